using System.Text.RegularExpressions;

namespace Polly.PriorityRouting.DocsTests.Support;

/// <summary>
/// Finds the documentation of the repository and the C# blocks in it: every <c>```csharp</c> (also <c>```cs</c>,
/// <c>```c#</c>) fence of <c>README.md</c>, <c>docs/**/*.md</c> and the packages' <c>src/*/*.md</c>.
/// </summary>
public static partial class MarkdownSnippets
{
    /// <summary>The repository's root: the nearest directory above the tests that holds the solution.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>The Markdown files whose C# blocks must compile, relative to the root, with '/' separators.</summary>
    public static IReadOnlyList<string> Files()
    {
        var files = new List<string> { "README.md" };
        var docs = Path.Combine(RepositoryRoot, "docs");
        if (Directory.Exists(docs))
        {
            files.AddRange(Directory.EnumerateFiles(docs, "*.md", SearchOption.AllDirectories).Select(Relative));
        }

        files.AddRange(Directory.EnumerateDirectories(Path.Combine(RepositoryRoot, "src"))
            .SelectMany(project => Directory.EnumerateFiles(project, "*.md", SearchOption.TopDirectoryOnly))
            .Select(Relative));
        return [.. files.Distinct().Order(StringComparer.Ordinal)];
    }

    /// <summary>Every C# block of every file of <see cref="Files"/>.</summary>
    public static IEnumerable<MarkdownSnippet> All()
        => Files().SelectMany(file => Parse(file, File.ReadAllText(Path.Combine(RepositoryRoot, file))));

    /// <summary>The C# blocks of one Markdown text; a fence indented (in a list) has that indentation removed.</summary>
    public static IEnumerable<MarkdownSnippet> Parse(string file, string markdown)
    {
        var lines = markdown.ReplaceLineEndings("\n").Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var open = CSharpFence().Match(lines[i]);
            if (!open.Success)
            {
                // A fence of another language: skip to its end, so a "```csharp" quoted inside it is not taken.
                var other = AnyFence().Match(lines[i]);
                if (other.Success)
                {
                    i = FindClose(lines, i + 1, other.Groups["fence"].Value);
                }

                continue;
            }

            var indent = open.Groups["indent"].Value.Length;
            var close = FindClose(lines, i + 1, open.Groups["fence"].Value);
            var code = lines[(i + 1)..Math.Min(close, lines.Length)].Select(line => Unindent(line, indent));
            yield return new MarkdownSnippet(file, i + 1, string.Join("\n", code));
            i = close;
        }
    }

    private static int FindClose(string[] lines, int from, string fence)
    {
        for (var j = from; j < lines.Length; j++)
        {
            var trimmed = lines[j].Trim();
            if (trimmed.Length >= fence.Length && trimmed.All(c => c == fence[0]))
            {
                return j;
            }
        }

        return lines.Length;
    }

    private static string Unindent(string line, int indent)
    {
        var spaces = 0;
        while (spaces < indent && spaces < line.Length && line[spaces] == ' ')
        {
            spaces++;
        }

        return line[spaces..];
    }

    private static string Relative(string path) => Path.GetRelativePath(RepositoryRoot, path).Replace('\\', '/');

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Polly.PriorityRouting.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Polly.PriorityRouting.sln above {AppContext.BaseDirectory}.");
    }

    [GeneratedRegex(@"^(?<indent>\s*)(?<fence>`{3,}|~{3,})\s*(csharp|cs|c#)\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex CSharpFence();

    [GeneratedRegex(@"^\s*(?<fence>`{3,}|~{3,})")]
    private static partial Regex AnyFence();
}
