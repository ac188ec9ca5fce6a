using System.Collections.Frozen;

namespace Polly.PriorityRouting;

/// <summary>
/// Which backends serve which logical model, for a pipeline where at least one backend has a
/// <see cref="PriorityBackend.Models"/> map. Built once per pipeline from configuration; a request only looks up.
/// </summary>
/// <remarks>
/// The routes are keyed by configured names only: a name that comes from a request and is not configured is answered
/// from the one precomputed <see cref="Unmapped"/> route (or not at all), so callers cannot grow this object.
/// </remarks>
internal sealed class ModelCatalog
{
    private readonly FrozenDictionary<string, ModelRoute> _routes;

    private ModelCatalog(RoutedBackend[] backends, IDictionary<string, IList<string>> modelFallbacks, IDictionary<string, IList<string>> contextWindowFallbacks)
    {
        // The names of the fallback chains are configured names too (validated as served at startup).
        var names = backends
            .SelectMany(backend => backend.Models?.LogicalNames ?? [])
            .Concat(ChainNames(modelFallbacks))
            .Concat(ChainNames(contextWindowFallbacks))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToArray();

        // A backend without a map serves every name, under the name the request carries.
        _routes = names
            .Select(name => new ModelRoute(name, backends, backend => backend.Models is null || backend.Models.Find(name) is not null))
            .ToFrozenDictionary(route => route.Name!, StringComparer.Ordinal);
        Names = names;
        foreach (var route in _routes.Values)
        {
            route.SetFallbacks(Chain(modelFallbacks, route.Name!), Chain(contextWindowFallbacks, route.Name!));
        }

        HasFallbacks = modelFallbacks.Count > 0 || contextWindowFallbacks.Count > 0;

        var unmapped = new ModelRoute(null, backends, backend => backend.Models is null);
        Unmapped = unmapped.Backends.Length > 0 ? unmapped : null;
    }

    /// <summary>Gets the configured logical names, in ordinal order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>
    /// Gets the route of a name that no map mentions: the backends without a map, which receive it unchanged; or
    /// <see langword="null"/> when every backend has a map, and such a name is answered 404.
    /// </summary>
    public ModelRoute? Unmapped { get; }

    /// <summary>Gets a value indicating whether any model has a fallback chain.</summary>
    public bool HasFallbacks { get; }

    /// <summary>Returns the catalog of a pipeline, or <see langword="null"/> when no backend has a map and no model a fallback.</summary>
    public static ModelCatalog? Create(
        RoutedBackend[] backends,
        IDictionary<string, IList<string>>? modelFallbacks = null,
        IDictionary<string, IList<string>>? contextWindowFallbacks = null)
    {
        modelFallbacks ??= new Dictionary<string, IList<string>>();
        contextWindowFallbacks ??= new Dictionary<string, IList<string>>();
        return backends.Any(backend => backend.Models is not null) || modelFallbacks.Count > 0 || contextWindowFallbacks.Count > 0
            ? new ModelCatalog(backends, modelFallbacks, contextWindowFallbacks)
            : null;
    }

    /// <summary>Returns the route of a logical name; <see langword="null"/> when no backend serves it.</summary>
    public ModelRoute? Resolve(string name) => _routes.TryGetValue(name, out var route) ? route : Unmapped;

    private static IEnumerable<string> ChainNames(IDictionary<string, IList<string>> chains)
        => chains.SelectMany(chain => (chain.Value ?? []).Prepend(chain.Key));

    private IEnumerable<ModelRoute> Chain(IDictionary<string, IList<string>> chains, string name)
        => chains.TryGetValue(name, out var chain) && chain is not null
            ? chain.Where(fallback => !string.Equals(fallback, name, StringComparison.Ordinal)).Select(fallback => _routes[fallback])
            : [];

    /// <summary>Returns the route of a configured name, for telemetry.</summary>
    public ModelRoute RouteOf(string configuredName) => _routes[configuredName];
}
