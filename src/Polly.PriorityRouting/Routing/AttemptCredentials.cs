namespace Polly.PriorityRouting;

/// <summary>
/// A backend's secret headers and bearer-token source, built once per backend and applied to each of its attempt
/// requests. Fetching the token is part of the attempt: with the one-line handler it runs in
/// <see cref="BackendCredentialsHandler"/>, under the attempt timeout, so a token source that hangs or fails makes the
/// backend fail over like a refused connection.
/// </summary>
/// <remarks>Carried in the request options when applied below the logging handlers; never shows a value.</remarks>
internal sealed class AttemptCredentials
{
    public static readonly HttpRequestOptionsKey<AttemptCredentials> Key = new("Polly.PriorityRouting.AttemptCredentials");

    private readonly string _backendName;
    private readonly KeyValuePair<string, string>[] _headers;
    private readonly Func<CancellationToken, ValueTask<string>>? _tokenProvider;

    private AttemptCredentials(string backendName, KeyValuePair<string, string>[] headers, Func<CancellationToken, ValueTask<string>>? tokenProvider)
    {
        _backendName = backendName;
        _headers = headers;
        _tokenProvider = tokenProvider;
    }

    /// <summary>Returns the credentials of a backend, or <see langword="null"/> when it sets no headers and no token.</summary>
    public static AttemptCredentials? Of(string backendName, KeyValuePair<string, string>[] headers, Func<CancellationToken, ValueTask<string>>? tokenProvider)
        => headers.Length == 0 && tokenProvider is null ? null : new AttemptCredentials(backendName, headers, tokenProvider);

    /// <summary>
    /// Sets the backend's headers and, with a token source, <c>Authorization: Bearer</c> on an attempt's request.
    /// </summary>
    /// <exception cref="HttpRequestException">The token could not be obtained: the backend cannot be reached.</exception>
    /// <exception cref="OperationCanceledException">The attempt was cancelled (by its caller or its timeout) while the token was fetched.</exception>
    public async ValueTask ApplyToAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        foreach (var header in _headers)
        {
            request.Headers.Remove(header.Key);
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (_tokenProvider is null)
        {
            return;
        }

        string token;
        try
        {
            var pending = _tokenProvider(cancellationToken);

            // A source that ignores the token still cannot hold the attempt past its cancellation.
            token = pending.IsCompletedSuccessfully ? pending.Result : await pending.AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            throw Unobtainable(e);
        }

        request.Headers.Remove("Authorization");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
    }

    /// <summary>Never shows a value.</summary>
    public override string ToString() => "(credentials)";

    /// <summary>
    /// The backend's credential could not be obtained (an Entra ID outage, a revoked identity): the backend cannot be
    /// reached, like a refused connection — a transport failure the default predicate fails over from, with the token
    /// source's own exception inside.
    /// </summary>
    private HttpRequestException Unobtainable(Exception e)
        => new(HttpRequestError.Unknown, $"The bearer token of backend '{_backendName}' could not be obtained: {e.Message}", e);
}
