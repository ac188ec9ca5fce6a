using System.Collections.Concurrent;
using System.Net;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// An in-memory transport: answers per host with a configurable responder and records every request it receives.
/// </summary>
internal sealed class RecordingHandler : HttpMessageHandler
{
    private readonly ConcurrentDictionary<string, Func<HttpRequestMessage, HttpResponseMessage>> _responders = new();

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    public List<HttpResponseMessage> Responses { get; } = [];

    public RecordingHandler Respond(string host, Func<HttpRequestMessage, HttpResponseMessage> responder)
    {
        _responders[host] = responder;
        return this;
    }

    public RecordingHandler Respond(string host, HttpStatusCode status, params (string Name, string Value)[] headers)
        => Respond(host, _ =>
        {
            var response = new HttpResponseMessage(status) { Content = new StringContent(host) };
            foreach (var (name, value) in headers)
            {
                response.Headers.TryAddWithoutValidation(name, value);
            }

            return response;
        });

    public RecordingHandler Throw(string host, Exception exception)
        => Respond(host, _ => throw exception);

    public int CountFor(string host) => Requests.Count(r => r.Host == host);

    public string[] Hosts => [.. Requests.Select(r => r.Host)];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        return Record(request, body);
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string? body = null;
        if (request.Content is not null)
        {
            // CopyTo, as SocketsHttpHandler does: ReadAsStream caches one stream per content object.
            using var buffer = new MemoryStream();
            request.Content.CopyTo(buffer, null, cancellationToken);
            body = System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        }

        return Record(request, body);
    }

    private HttpResponseMessage Record(HttpRequestMessage request, string? body)
    {
        var host = request.RequestUri!.Host;
        Requests.Enqueue(new RecordedRequest(
            host,
            request.RequestUri,
            request.Headers.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase),
            body));

        var response = _responders.TryGetValue(host, out var responder)
            ? responder(request)
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(host) };
        response.RequestMessage ??= request;
        lock (Responses)
        {
            Responses.Add(response);
        }

        return response;
    }
}
