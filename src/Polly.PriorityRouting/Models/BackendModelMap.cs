using System.Collections.Frozen;

namespace Polly.PriorityRouting;

/// <summary>
/// The models one backend serves (<see cref="PriorityBackend.Models"/>), frozen when the pipeline is built: logical name
/// → the backend's own name.
/// </summary>
internal sealed class BackendModelMap
{
    private readonly FrozenDictionary<string, ModelDeployment> _deployments;

    private BackendModelMap(FrozenDictionary<string, ModelDeployment> deployments) => _deployments = deployments;

    /// <summary>Gets the logical names, in ordinal order.</summary>
    public IEnumerable<string> LogicalNames => _deployments.Keys.Order(StringComparer.Ordinal);

    /// <summary>Returns the map of a configured backend, or <see langword="null"/> when it serves every name unchanged.</summary>
    public static BackendModelMap? Create(IDictionary<string, string>? models)
    {
        if (models is null || models.Count == 0)
        {
            return null;
        }

        // One deployment object per distinct name, so aliases share it.
        var byName = new Dictionary<string, ModelDeployment>(StringComparer.Ordinal);
        var map = new Dictionary<string, ModelDeployment>(StringComparer.Ordinal);
        foreach (var (logical, name) in models)
        {
            if (!byName.TryGetValue(name, out var deployment))
            {
                deployment = new ModelDeployment(name);
                byName.Add(name, deployment);
            }

            map[logical] = deployment;
        }

        return new BackendModelMap(map.ToFrozenDictionary(StringComparer.Ordinal));
    }

    /// <summary>Returns this backend's name for a logical model, or <see langword="null"/> when it does not serve it.</summary>
    public ModelDeployment? Find(string logicalName) => _deployments.GetValueOrDefault(logicalName);
}
