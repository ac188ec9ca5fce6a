namespace Polly.PriorityRouting;

/// <summary>The rules of <see cref="PriorityBackend.Models"/>.</summary>
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

    private static bool IsName(string? name)
        => !string.IsNullOrEmpty(name) &&
           !char.IsWhiteSpace(name[0]) &&
           !char.IsWhiteSpace(name[^1]) &&
           !name.AsSpan().ContainsAnyInRange('\0', '\u001f') &&
           !name.Contains('\u007f', StringComparison.Ordinal);
}
