namespace Polly.PriorityRouting;

/// <summary>
/// Applies a backend's secret headers and fetches its bearer token at the last moment, just above the primary handler:
/// no logging handler of <c>IHttpClientFactory</c> ever sees them, and the token fetch is inside the attempt (its
/// timeout bounds it; a failure fails over).
/// </summary>
internal sealed class BackendCredentialsHandler : DelegatingHandler
{
    public BackendCredentialsHandler(HttpMessageHandler innerHandler)
        : base(innerHandler)
    {
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Options.TryGetValue(AttemptCredentials.Key, out var credentials))
        {
            await credentials.ApplyToAsync(request, cancellationToken).ConfigureAwait(false);
        }

        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Options.TryGetValue(AttemptCredentials.Key, out var credentials))
        {
            // A synchronous Send blocks on a token that is being fetched, which is what a synchronous caller asked for.
            var applying = credentials.ApplyToAsync(request, cancellationToken);
            if (!applying.IsCompletedSuccessfully)
            {
                applying.AsTask().GetAwaiter().GetResult();
            }
        }

        return base.Send(request, cancellationToken);
    }
}
