using Microsoft.Extensions.DependencyInjection;

namespace Polly.PriorityRouting;

internal sealed class PriorityRoutingHandlerBuilder(string pipelineName, IServiceCollection services) : IPriorityRoutingHandlerBuilder
{
    public string PipelineName { get; } = pipelineName;

    public IServiceCollection Services { get; } = services;
}
