using Microsoft.Extensions.Http;

namespace Polly.PriorityRouting;

/// <summary>
/// Wraps the primary handler of one named client with <see cref="BackendCredentialsHandler"/>. A filter, not a
/// builder action: it runs after every <c>ConfigurePrimaryHttpMessageHandler</c>, whatever the registration order, and
/// inside the logging filter, so that the credentials sit below the <c>ClientHandler</c> logger.
/// </summary>
internal sealed class BackendCredentialsHandlerBuilderFilter(string clientName) : IHttpMessageHandlerBuilderFilter
{
    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next)
        => builder =>
        {
            next(builder);
            if (string.Equals(builder.Name, clientName, StringComparison.Ordinal))
            {
                builder.PrimaryHandler = new BackendCredentialsHandler(builder.PrimaryHandler);
            }
        };
}
