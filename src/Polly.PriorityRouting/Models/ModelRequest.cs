namespace Polly.PriorityRouting;

/// <summary>
/// The logical model one request asks for, resolved once before the first attempt: from the
/// <c>/openai/deployments/{name}/</c> segment of its path, or else from the top-level <c>"model"</c> of its JSON body;
/// with the route of backends that serve it, and what each attempt needs to carry the backend's own name.
/// </summary>
/// <remarks>
/// Only pipelines where some backend has a <see cref="PriorityBackend.Models"/> map resolve models; the others keep
/// today's path. A path-style request is rewritten by the backend's attempt URI (<see cref="DeploymentPath"/>); a
/// body-style request uses the one read of its body (<see cref="RequestBody"/>, its bytes kept), and every attempt
/// writes slices of that buffer (<see cref="ModelRewrittenContent"/>).
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
    /// <param name="catalog">The pipeline's models.</param>
    /// <param name="request">The caller's request.</param>
    /// <param name="body">Its body, read with its bytes kept, or <see langword="null"/> when it has no JSON body.</param>
    public static ModelRequest? Resolve(ModelCatalog catalog, HttpRequestMessage request, RequestBody? body)
    {
        if (DeploymentPath.TryGetName(request.RequestUri, out var name))
        {
            return new ModelRequest(name, catalog.Resolve(name));
        }

        if (body?.Facts is not { Model: { } model } facts)
        {
            return null;
        }

        // Without its bytes (never, when read for a model map) the body could not be rewritten: it goes as it is.
        var bytes = body.Bytes;
        return new ModelRequest(model, catalog.Resolve(model), bytes.IsEmpty ? null : request.Content, bytes, facts.ModelStart, facts.ModelEnd);
    }

    /// <summary>
    /// Returns the body of an attempt on <paramref name="backend"/>: a rewritten copy-free view when the backend names the
    /// model differently, otherwise <see langword="null"/> (the caller's content goes as it is).
    /// </summary>
    public HttpContent? ContentFor(RoutedBackend backend)
        => _content is not null && Route?.DeploymentOn(backend) is { } deployment && !string.Equals(deployment.Name, Name, StringComparison.Ordinal)
            ? new ModelRewrittenContent(_content, _body, _valueStart, _valueEnd, deployment.JsonLiteral)
            : null;
}
