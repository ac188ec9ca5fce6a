namespace Polly.PriorityRouting;

/// <summary>
/// The rules of <see cref="PriorityBackend.Models"/>, <see cref="PriorityRoutingStrategyOptions.ModelFallbacks"/> and
/// <see cref="PriorityRoutingStrategyOptions.ContextWindowFallbacks"/>.
/// </summary>
internal static partial class PriorityRoutingStrategyOptionsValidator
{
    /// <summary>
    /// Both sides of every entry must be a name: not empty, no white space at either end (a configuration typo that
    /// would never match), no control characters. Two logical names may map to one deployment: an alias, by design
    /// (they share the deployment's throttles). A name that no backend serves is not an error: it is answered 404, and
    /// the startup log lists what is served.
    /// </summary>
    private static void ValidateModels(IDictionary<string, string> models, string path, List<string> errors)
    {
        foreach (var (logical, name) in models)
        {
            if (!IsName(logical))
            {
                errors.Add($"{path}.Models has an invalid model name '{logical}': it must be non-empty, without white space at either end or control characters.");
                continue;
            }

            if (!IsName(name))
            {
                errors.Add($"{path}.Models['{logical}'] must be this backend's deployment or model name, but was '{name}': it must be non-empty, without white space at either end or control characters.");
            }
        }
    }

    /// <summary>
    /// Every model of a fallback chain must be served by some backend (a backend without a map serves every name), may
    /// not be the model itself nor appear twice in its list, and the chains may not form a cycle.
    /// </summary>
    private static void ValidateFallbacks(IDictionary<string, IList<string>>? chains, IList<PriorityBackend>? backends, string path, List<string> errors)
    {
        if (chains is null || chains.Count == 0)
        {
            return;
        }

        var backendList = backends?.Where(backend => backend is not null).ToList() ?? [];
        var servesAny = backendList.Any(backend => backend.Models is null || backend.Models.Count == 0);
        var served = backendList.SelectMany(backend => backend.Models?.Keys ?? []).ToHashSet(StringComparer.Ordinal);
        bool IsServed(string name) => servesAny || served.Contains(name);
        var shownServed = string.Join(", ", served.Order(StringComparer.Ordinal).Select(name => $"'{name}'"));

        foreach (var (model, fallbacks) in chains)
        {
            if (!IsName(model))
            {
                errors.Add($"{path} has an invalid model name '{model}': it must be non-empty, without white space at either end or control characters.");
                continue;
            }

            if (!IsServed(model))
            {
                errors.Add($"{path}['{model}'] names a model no backend serves (served: {shownServed}).");
            }

            if (fallbacks is null || fallbacks.Count == 0)
            {
                errors.Add($"{path}['{model}'] must list at least one fallback model.");
                continue;
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < fallbacks.Count; i++)
            {
                var fallback = fallbacks[i];
                var item = $"{path}['{model}'][{i}]";
                if (!IsName(fallback))
                {
                    errors.Add($"{item} must be a model name, but was '{fallback}': it must be non-empty, without white space at either end or control characters.");
                }
                else if (string.Equals(fallback, model, StringComparison.Ordinal))
                {
                    errors.Add($"{item} is '{model}' itself: a model cannot fall back to itself.");
                }
                else if (!seen.Add(fallback))
                {
                    errors.Add($"{item} lists '{fallback}' a second time.");
                }
                else if (!IsServed(fallback))
                {
                    errors.Add($"{item} names '{fallback}', which no backend serves (served: {shownServed}).");
                }
            }
        }

        if (FindCycle(chains) is { } cycle)
        {
            errors.Add($"{path} has a cycle: {string.Join(" → ", cycle.Select(name => $"'{name}'"))}.");
        }
    }

    /// <summary>Returns the models of a cycle of fallbacks (the first model repeated at the end), or <see langword="null"/>.</summary>
    private static List<string>? FindCycle(IDictionary<string, IList<string>> chains)
    {
        // Depth-first over "falls back to" edges; a model reached again while on the path closes a cycle. A model's
        // edge to itself is reported on its own.
        var done = new HashSet<string>(StringComparer.Ordinal);
        var path = new List<string>();
        List<string>? Visit(string model)
        {
            var onPath = path.IndexOf(model);
            if (onPath >= 0)
            {
                return [.. path.Skip(onPath), model];
            }

            if (!done.Add(model))
            {
                return null;
            }

            path.Add(model);
            if (chains.TryGetValue(model, out var fallbacks) && fallbacks is not null)
            {
                foreach (var fallback in fallbacks)
                {
                    if (fallback is not null && !string.Equals(fallback, model, StringComparison.Ordinal) && Visit(fallback) is { } cycle)
                    {
                        return cycle;
                    }
                }
            }

            path.RemoveAt(path.Count - 1);
            return null;
        }

        foreach (var model in chains.Keys)
        {
            if (Visit(model) is { } cycle)
            {
                return cycle;
            }
        }

        return null;
    }

    private static bool IsName(string? name)
        => !string.IsNullOrEmpty(name) &&
           !char.IsWhiteSpace(name[0]) &&
           !char.IsWhiteSpace(name[^1]) &&
           !name.AsSpan().ContainsAnyInRange('\0', '\u001f') &&
           !name.Contains('\u007f', StringComparison.Ordinal);
}
