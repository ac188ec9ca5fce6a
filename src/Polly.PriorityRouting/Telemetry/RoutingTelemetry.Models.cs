using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Polly.PriorityRouting;

/// <summary>What the strategy reports about model maps (<see cref="PriorityBackend.Models"/>).</summary>
internal sealed partial class RoutingTelemetry
{
    /// <summary>
    /// Once per pipeline build: which backends serve which model under which name, and what happens to other names —
    /// so a name served by no backend, or an alias, is visible at startup rather than at the first 404.
    /// </summary>
    public void ModelsRouted(ModelCatalog catalog)
    {
        if (!_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        var routes = new StringBuilder();
        foreach (var name in catalog.Names)
        {
            var route = catalog.RouteOf(name);
            routes.Append(routes.Length == 0 ? string.Empty : "; ")
                .Append(CultureInfo.InvariantCulture, $"'{name}' on ")
                .AppendJoin(", ", route.Backends.Select(backend => route.DeploymentOn(backend) is { } deployment
                    ? $"{backend.Name} as '{deployment.Name}'"
                    : $"{backend.Name} unchanged"));
            if (route.ModelChain.Length > 1)
            {
                routes.Append(", then ").AppendJoin(", then ", route.ModelChain.Skip(1).Select(fallback => $"'{fallback.Name}'"));
            }

            if (route.ContextWindowChain.Length > 0)
            {
                routes.Append(", prompts too long for it to ").AppendJoin(", then ", route.ContextWindowChain.Select(larger => $"'{larger.Name}'"));
            }
        }

        var others = catalog.Unmapped is { } unmapped
            ? "sent unchanged to " + string.Join(", ", unmapped.Backends.Select(backend => backend.Name))
            : "answered 404 without calling a backend";
        ModelLog.ModelsRouted(_logger, routes.ToString(), others);
    }

    /// <summary>A request goes on to another model of its chain (configured names: bounded).</summary>
    public void FallingBackToModel(ModelRoute from, ModelRoute to, int attemptNumber)
        => ModelLog.FallingBackToModel(_logger, from.Name, to.Name, attemptNumber);

    /// <summary>A request named a model that no backend serves (the name as the 404 shows it: bounded).</summary>
    public void ModelNotFound(string model) => ModelLog.ModelNotFound(_logger, ModelNotFoundResponse.Shown(model));

    /// <summary>Event ids 20+ (docs/observability.md).</summary>
    private static partial class ModelLog
    {
        [LoggerMessage(20, LogLevel.Information, "Models: {Routes}. Other model names are {Others}.")]
        public static partial void ModelsRouted(ILogger logger, string routes, string others);

        [LoggerMessage(21, LogLevel.Debug, "No backend serves model '{Model}'; answering 404 without calling a backend.")]
        public static partial void ModelNotFound(ILogger logger, string model);

        [LoggerMessage(22, LogLevel.Information, "Falling back from model '{FromModel}' to model '{ToModel}' (attempt {AttemptNumber}).")]
        public static partial void FallingBackToModel(ILogger logger, string? fromModel, string? toModel, int attemptNumber);
    }
}
