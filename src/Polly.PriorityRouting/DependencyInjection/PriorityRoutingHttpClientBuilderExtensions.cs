using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
using Polly.PriorityRouting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers the priority routing handler on an <see cref="IHttpClientBuilder"/>, in one line.
/// </summary>
public static class PriorityRoutingHttpClientBuilderExtensions
{
    /// <summary>
    /// Adds the priority routing handler, configured from a configuration section shaped like
    /// <see cref="PriorityRoutingHandlerOptions"/> (<c>Routing</c>, <c>Retry</c>, <c>TotalRequestTimeout</c>,
    /// <c>AttemptTimeout</c>). The options reload with the configuration; throttle state survives reloads.
    /// </summary>
    /// <param name="builder">The HTTP client builder.</param>
    /// <param name="section">The configuration section.</param>
    /// <returns>A builder to keep configuring the handler.</returns>
    public static IPriorityRoutingHandlerBuilder AddPriorityRoutingHandler(this IHttpClientBuilder builder, IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(section);
        return builder.AddPriorityRoutingHandler().Configure(section);
    }

    /// <summary>
    /// Adds the priority routing handler, configured in code.
    /// </summary>
    /// <param name="builder">The HTTP client builder.</param>
    /// <param name="configure">Configures the options.</param>
    /// <returns>A builder to keep configuring the handler.</returns>
    public static IPriorityRoutingHandlerBuilder AddPriorityRoutingHandler(this IHttpClientBuilder builder, Action<PriorityRoutingHandlerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return builder.AddPriorityRoutingHandler().Configure(configure);
    }

    /// <summary>
    /// Adds the priority routing handler: from outer to inner, a total request timeout, a retry that waits for the
    /// exhausted answer's <c>Retry-After</c> (never past the time left), priority routing, and an attempt timeout.
    /// </summary>
    /// <param name="builder">The HTTP client builder.</param>
    /// <returns>A builder to configure the handler (<c>Configure</c>, <c>AddBearerToken</c>).</returns>
    /// <remarks>
    /// The client needs no <see cref="HttpClient.BaseAddress"/>: relative request URIs work as they are (the handler
    /// gives a client without one a placeholder), and absolute ones too; every attempt goes to the chosen backend.
    /// Options are named after the pipeline (<see cref="IPriorityRoutingHandlerBuilder.PipelineName"/>), so every named
    /// client keeps its own backends, while all share the <see cref="IBackendStateStore"/> registered in DI (or
    /// <see cref="InMemoryBackendStateStore.Shared"/>), by backend name. Options are validated when the host starts.
    /// </remarks>
    public static IPriorityRoutingHandlerBuilder AddPriorityRoutingHandler(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var optionsName = PriorityRoutingHandlerNames.OptionsName(builder.Name);
        builder.Services.AddOptions<PriorityRoutingHandlerOptions>(optionsName).ValidateOnStart();
        builder.Services.TryAddEnumerable(
            ServiceDescriptor.Singleton<IValidateOptions<PriorityRoutingHandlerOptions>, PriorityRoutingHandlerOptionsValidation>());

        // Post-configured, so it runs after every action of the user, whatever the registration order, and keeps what
        // the user set. HttpClient rejects a relative request URI without a BaseAddress before any handler runs, yet the
        // routing decides every attempt's address: fill in a placeholder. HttpClient.Timeout wraps the whole handler: at
        // its 100 s default it would cut the handler's own TotalRequestTimeout (5 min) short, and end a call that is
        // failing over with a TaskCanceledException instead of an answer.
        builder.Services.PostConfigure<HttpClientFactoryOptions>(builder.Name, options =>
            options.HttpClientActions.Add(client =>
            {
                client.BaseAddress ??= PriorityRoutingHandlerNames.PlaceholderBaseAddress;
                if (client.Timeout == PriorityRoutingConstants.HttpClientDefaultTimeout)
                {
                    client.Timeout = Timeout.InfiniteTimeSpan;
                }
            }));

        // Backend headers and tokens are applied below IHttpClientFactory's logging handlers: see BackendCredentialsHandler.
        builder.Services.AddSingleton<IHttpMessageHandlerBuilderFilter>(new BackendCredentialsHandlerBuilderFilter(builder.Name));

        // What every client on the container's store shares: marks, health, budgets.
        builder.Services.TryAddSingleton(PriorityRoutingHandlerPipeline.CreateSharedState);
        builder.Services.TryAddSingleton<DefaultAffinityClock>();
        builder.Services.AddPriorityRoutingSnapshots();
        builder.Services.AddSingleton(new PriorityRoutingRegistration(builder.Name));
        builder.AddResilienceHandler(PriorityRoutingHandlerNames.PipelineSuffix, (pipeline, context) =>
        {
            context.EnableReloads<PriorityRoutingHandlerOptions>(optionsName);
            var options = context.GetOptions<PriorityRoutingHandlerOptions>(optionsName);
            PriorityRoutingHandlerPipeline.Compose(pipeline, optionsName, options, context.ServiceProvider);
        });

        return new PriorityRoutingHandlerBuilder(optionsName, builder.Services);
    }
}
