namespace Polly.PriorityRouting.TokenEstimate;

/// <summary>
/// The prompt texts measured: the repository's own documentation (English technical prose) and C# sources (code), and
/// short paragraphs written for this measurement in German, French, Russian, Japanese and Chinese (the scripts that
/// tokenize densest per byte).
/// </summary>
internal static class Payloads
{
    public static IEnumerable<(string Kind, string Text)> Load(string repositoryRoot)
    {
        foreach (var file in Directory.EnumerateFiles(Path.Combine(repositoryRoot, "docs"), "*.md").Order(StringComparer.Ordinal))
        {
            foreach (var chunk in Chunks(File.ReadAllText(file), 6_000))
            {
                yield return ("English prose (docs/*.md)", chunk);
            }
        }

        foreach (var file in Directory.EnumerateFiles(Path.Combine(repositoryRoot, "src", "Polly.PriorityRouting", "Routing"), "*.cs").Order(StringComparer.Ordinal))
        {
            foreach (var chunk in Chunks(File.ReadAllText(file), 6_000))
            {
                yield return ("C# code (src/…/Routing)", chunk);
            }
        }

        foreach (var (kind, paragraph) in Paragraphs)
        {
            // Each paragraph repeated to a realistic prompt length.
            yield return (kind, string.Concat(Enumerable.Repeat(paragraph + " ", 20)));
        }
    }

    private static readonly (string Kind, string Text)[] Paragraphs =
    [
        ("German", "Wenn alle Bereitstellungen gedrosselt sind, antwortet die Strategie mit dem frühesten Zeitpunkt, zu dem wieder Kapazität frei wird, und verteilt die wartenden Aufrufer über die nächsten Auffüllungen des Kontingents."),
        ("French", "Lorsque tous les déploiements sont limités, la stratégie répond avec le premier moment où de la capacité se libère, et répartit les appelants en attente sur les prochains remplissages du quota."),
        ("Russian", "Когда все развертывания ограничены, стратегия отвечает самым ранним моментом, когда освобождается емкость, и распределяет ожидающих клиентов по следующим пополнениям квоты."),
        ("Japanese", "すべてのデプロイが制限されている場合、戦略は容量が空く最も早い時刻を返し、待機中の呼び出し元を次のクォータ補充に分散させます。"),
        ("Chinese", "当所有部署都被限流时，该策略会返回最早有可用容量的时间，并把等待中的调用方分散到后续的配额补充中。"),
    ];

    private static IEnumerable<string> Chunks(string text, int size)
    {
        for (var start = 0; start < text.Length; start += size)
        {
            yield return text.Substring(start, Math.Min(size, text.Length - start));
        }
    }
}
