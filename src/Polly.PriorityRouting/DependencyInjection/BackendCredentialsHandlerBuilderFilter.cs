using Microsoft.Extensions.Http;

namespace Polly.PriorityRouting;

/// <summary>
/// Wraps the primary handler of one named client with <see cref="BackendCredentialsHandler"/>. A filter, not a
/// builder action: it runs after every <c>ConfigurePrimaryHttpMessageHandler</c>, whatever the registration order, and
/// inside the logging filter, so that the credentials sit below the <c>ClientHandler</c> logger.
/// </summary>
/// <param name="clientName">
/// The client whose handler to wrap, or <see langword="null"/> for every client: the handler was registered through
/// <c>ConfigureHttpClientDefaults</c>, and a client without the credentials handler would send requests without the
/// backends' credentials.
/// </param>
internal sealed class BackendCredentialsHandlerBuilderFilter(string? clientName) : IHttpMessageHandlerBuilderFilter
{
    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next)
        => builder =>
        {
            next(builder);
            if (clientName is null || string.Equals(builder.Name, clientName, StringComparison.Ordinal))
            {
                builder.PrimaryHandler = new BackendCredentialsHandler(builder.PrimaryHandler);
            }
        };
}
