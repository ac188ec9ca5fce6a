using System.Net.Http.Headers;

namespace Polly.PriorityRouting;

/// <summary>
/// The logical model one request asks for, resolved once before the first attempt: from the
/// <c>/openai/deployments/{name}/</c> segment of its path, or else from the top-level <c>"model"</c> of its JSON body;
/// with the route of backends that serve it, and what each attempt needs to carry the backend's own name.
/// </summary>
/// <remarks>
/// Only pipelines where some backend has a <see cref="PriorityBackend.Models"/> map resolve models; the others keep
/// today's path. A path-style request is rewritten by the backend's attempt URI (<see cref="DeploymentPath"/>); a
/// body-style request reads its body once into one buffer (the body is already buffered for replay, but not
/// accessibly), scans it once, and every attempt writes slices of that buffer (<see cref="ModelRewrittenContent"/>).
/// </remarks>
internal sealed class ModelRequest
{
    private readonly HttpContent? _content;
    private readonly ReadOnlyMemory<byte> _body;
    private readonly int _valueStart;
    private readonly int _valueEnd;

    private ModelRequest(string name, ModelRoute? route, HttpContent? content = null, ReadOnlyMemory<byte> body = default, int valueStart = 0, int valueEnd = 0)
    {
        Name = name;
        Route = route;
        _content = content;
        _body = body;
        _valueStart = valueStart;
        _valueEnd = valueEnd;
    }

    /// <summary>Gets the logical model name the request asks for.</summary>
    public string Name { get; }

    /// <summary>Gets the backends that serve it; <see langword="null"/> when none does (the answer is a 404).</summary>
    public ModelRoute? Route { get; }

    /// <summary>
    /// Resolves the model of a request whose body was made replayable; <see langword="null"/> when the request names
    /// none (it then routes over every backend, unchanged).
    /// </summary>
    public static ValueTask<ModelRequest?> ResolveAsync(ModelCatalog catalog, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (DeploymentPath.TryGetName(request.RequestUri, out var name))
        {
            return new(new ModelRequest(name, catalog.Resolve(name)));
        }

        if (request.Content is not { } content || !IsJson(content.Headers.ContentType))
        {
            return new((ModelRequest?)null);
        }

        return ResolveFromBodyAsync(catalog, content, cancellationToken);
    }

    /// <summary>
    /// Returns the body of an attempt on <paramref name="backend"/> for the model <paramref name="serving"/> (the
    /// requested one, or a fallback): a rewritten copy-free view when the backend names the model differently, otherwise
    /// <see langword="null"/> (the caller's content goes as it is).
    /// </summary>
    public HttpContent? ContentFor(RoutedBackend backend, ModelRoute? serving)
        => _content is not null && DeploymentOn(backend, serving) is { } deployment && !string.Equals(deployment.Name, Name, StringComparison.Ordinal)
            ? new ModelRewrittenContent(_content, _body, _valueStart, _valueEnd, deployment.JsonLiteral)
            : null;

    /// <summary>
    /// Returns the deployment segment an attempt's path carries when a path-style request falls back to another model;
    /// <see langword="null"/> otherwise (the backend's cached attempt URI maps the requested model).
    /// </summary>
    public ModelDeployment? PathDeploymentFor(RoutedBackend backend, ModelRoute? serving)
        => _content is null && serving is not null && serving != Route ? serving.FallbackDeploymentOn(backend) : null;

    private ModelDeployment? DeploymentOn(RoutedBackend backend, ModelRoute? serving)
        => serving is null || serving == Route ? Route?.DeploymentOn(backend) : serving.FallbackDeploymentOn(backend);

    private static async ValueTask<ModelRequest?> ResolveFromBodyAsync(ModelCatalog catalog, HttpContent content, CancellationToken cancellationToken)
    {
        var body = await ReadAsync(content, cancellationToken).ConfigureAwait(false);
        if (!JsonModelProperty.TryFind(body.Span, out var name, out var start, out var end))
        {
            return null;
        }

        return new ModelRequest(name, catalog.Resolve(name), content, body, start, end);
    }

    /// <summary>Copies the (already buffered) body into one array of its size.</summary>
    private static async ValueTask<ReadOnlyMemory<byte>> ReadAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var length = content.Headers.ContentLength;
        if (length is 0 or > int.MaxValue)
        {
            return ReadOnlyMemory<byte>.Empty;
        }

        using var buffer = new MemoryStream(length is { } known ? (int)known : 0);
        await content.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        return new ReadOnlyMemory<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>JSON, or no declared type at all; never multipart forms, form posts or binary uploads.</summary>
    private static bool IsJson(MediaTypeHeaderValue? contentType)
        => contentType?.MediaType is not { } mediaType ||
           string.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase) ||
           mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
}
