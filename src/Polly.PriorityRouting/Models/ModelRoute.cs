namespace Polly.PriorityRouting;

/// <summary>
/// The backends that serve one logical model, and each one's own name for it; precomputed per pipeline, so that a
/// request only looks its model up.
/// </summary>
/// <remarks>
/// Selection runs over this subset by disallowing every other backend (see <see cref="ModelStage"/>), so tiers, weights, throttles,
/// probes and <c>MaxAttempts</c> work unchanged; the exhausted answer is computed over <see cref="Backends"/> only.
/// </remarks>
internal sealed class ModelRoute
{
    private readonly ModelDeployment?[] _deployments;
    private readonly int[] _excluded;

    /// <param name="name">The logical name, or <see langword="null"/> for the route of names no map mentions.</param>
    /// <param name="backends">Every backend of the pipeline, best tier first.</param>
    /// <param name="serves">Whether a backend serves the model.</param>
    public ModelRoute(string? name, RoutedBackend[] backends, Func<RoutedBackend, bool> serves)
    {
        Name = name;
        _deployments = new ModelDeployment?[backends.Length];
        var serving = new List<RoutedBackend>();
        var excluded = new List<int>();
        foreach (var backend in backends)
        {
            if (!serves(backend))
            {
                excluded.Add(backend.Index);
                continue;
            }

            serving.Add(backend);
            _deployments[backend.Index] = name is null ? null : backend.Models?.Find(name);
        }

        Backends = [.. serving];
        _excluded = [.. excluded];
    }

    /// <summary>Gets the logical name; <see langword="null"/> for names that no map mentions.</summary>
    public string? Name { get; }

    /// <summary>Gets the backends that serve the model, best tier first.</summary>
    public RoutedBackend[] Backends { get; }

    /// <summary>
    /// Returns the backend's own name for the model, or <see langword="null"/> when the backend has no map (it receives
    /// the request unchanged) or does not serve it.
    /// </summary>
    public ModelDeployment? DeploymentOn(RoutedBackend backend) => _deployments[backend.Index];

    /// <summary>Adds the backends that do not serve the model to <paramref name="disallowed"/>, so that selection never picks them.</summary>
    public void ExcludeOthers(ref BackendSet disallowed)
    {
        foreach (var index in _excluded)
        {
            disallowed.Add(index);
        }
    }
}
