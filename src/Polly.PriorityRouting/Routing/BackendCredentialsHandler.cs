namespace Polly.PriorityRouting;

/// <summary>
/// Applies a backend's secret headers at the last moment, just above the primary handler, so that no logging handler
/// of <c>IHttpClientFactory</c> ever sees them.
/// </summary>
internal sealed class BackendCredentialsHandler : DelegatingHandler
{
    public BackendCredentialsHandler(HttpMessageHandler innerHandler)
        : base(innerHandler)
    {
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Apply(request);
        return base.SendAsync(request, cancellationToken);
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Apply(request);
        return base.Send(request, cancellationToken);
    }

    private static void Apply(HttpRequestMessage request)
    {
        if (request.Options.TryGetValue(AttemptCredentials.Key, out var credentials))
        {
            credentials.ApplyTo(request);
        }
    }
}
