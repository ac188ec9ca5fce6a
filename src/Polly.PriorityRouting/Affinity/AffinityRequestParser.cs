namespace Polly.PriorityRouting;

/// <summary>
/// Finds the ids a request refers to in the OpenAI and Azure OpenAI shapes: a path segment after a collection
/// (<c>/responses/{id}</c>, <c>/files/{id}</c>, …, under <c>/v1/</c>, <c>/openai/v1/</c> or <c>/openai/</c>) and, for JSON
/// POSTs to those collections, body properties (<c>previous_response_id</c>, <c>conversation</c>, <c>file_id</c>,
/// <c>input_file_id</c>, <c>vector_store_ids</c>, <c>thread_id</c>, <c>assistant_id</c>, <c>container</c>, and the
/// <c>"id":"rs_…"</c> of reasoning items sent back in a Responses <c>input</c>).
/// </summary>
/// <remarks>
/// A request whose path names no collection costs one scan of its path and allocates nothing. What its body says comes
/// from the one read of the body (<see cref="RequestBody"/>, <see cref="RequestBodyFacts"/>), shared with the model and
/// the token estimate (<c>AffinityRequestParser.Body.cs</c>).
/// </remarks>
internal static partial class AffinityRequestParser
{
    /// <summary>Soft-affinity keys longer than this are ignored.</summary>
    internal const int MaxStickyKeyLength = 256;

    public static AffinityRequest Parse(HttpRequestMessage request)
    {
        var fullPath = PathOf(request.RequestUri);
        var path = fullPath;
        var method = request.Method;
        AffinityIdKind? collection = null;
        AffinityIdKind? firstCollection = null;
        var lastWasCollection = false;
        AffinityId referenced = default;
        var idIsLast = false;
        var runs = RunsOf.None;

        while (!path.IsEmpty)
        {
            var slash = path.IndexOf('/');
            var segment = slash < 0 ? path : path[..slash];
            path = slash < 0 ? [] : path[(slash + 1)..];
            if (segment.IsEmpty)
            {
                continue;
            }

            // Assistants runs live in a thread: /threads/runs creates both, /threads/{id}/runs a run in that thread.
            runs = !segment.SequenceEqual("runs") ? RunsOf.None
                : collection == OpenAIAffinityKinds.Thread ? RunsOf.NewThread
                : idIsLast && referenced.Kind == OpenAIAffinityKinds.Thread ? RunsOf.ReferencedThread
                : RunsOf.None;
            if (collection is not null && referenced.IsEmpty && LooksLikeId(segment))
            {
                referenced = new AffinityId(segment.ToString(), collection);
                idIsLast = true;
                lastWasCollection = false;
                collection = null;
                continue;
            }

            idIsLast = false;
            collection = CollectionOf(segment);
            lastWasCollection = collection is not null;
            firstCollection ??= collection;
        }

        var post = method == HttpMethod.Post;
        var json = post && request.Content is { } content && RequestBody.IsJson(content.Headers.ContentType);
        if (firstCollection is null)
        {
            // A chat completion refers to no stored state; its body may carry a soft-affinity key.
            // Its content parts may name an uploaded file ({"type":"file","file":{"file_id":…}}), which pins it.
            return json && fullPath.EndsWith("/chat/completions", StringComparison.Ordinal)
                ? new AffinityRequest { ReadsBody = true }
                : default;
        }

        // A new response chained to a stored one is created on the same backend, and is learned too.
        var creates = post && lastWasCollection && referenced.IsEmpty && collection == firstCollection ? collection : null;
        if (post && runs != RunsOf.None)
        {
            // A run is only ever addressed under its thread; the thread /threads/runs creates is pinned from the answer's
            // thread_id (or from the first event of a stream, thread.created), the run id with it.
            creates = OpenAIAffinityKinds.Thread;
        }

        return new AffinityRequest
        {
            Referenced = referenced,
            DeletesReferenced = method == HttpMethod.Delete && idIsLast,
            Creates = creates,
            CreatedParentIdProperty = runs == RunsOf.NewThread ? "thread_id" : null,
            ReadsBody = json && referenced.IsEmpty,
            LearnsReasoningItems = creates == OpenAIAffinityKinds.Response,
        };
    }

    /// <summary>Where a path ending in <c>/runs</c> creates an Assistants run.</summary>
    private enum RunsOf
    {
        /// <summary>The path does not end in a collection of runs.</summary>
        None,

        /// <summary><c>/threads/runs</c>: a new thread, and a run in it.</summary>
        NewThread,

        /// <summary><c>/threads/{id}/runs</c>: a run in the referenced thread.</summary>
        ReferencedThread,
    }

    internal static AffinityIdKind? CollectionOf(ReadOnlySpan<char> segment) => segment switch
    {
        "responses" => OpenAIAffinityKinds.Response,
        "conversations" => OpenAIAffinityKinds.Conversation,
        "files" => OpenAIAffinityKinds.File,
        "batches" => OpenAIAffinityKinds.Batch,
        "vector_stores" => OpenAIAffinityKinds.VectorStore,
        "containers" => OpenAIAffinityKinds.Container,
        "threads" => OpenAIAffinityKinds.Thread,
        "assistants" => OpenAIAffinityKinds.Assistant,
        _ => null,
    };

    /// <summary>Ids carry '_' or '-' (<c>resp_</c>, <c>file-</c>, …), which tells them from sub-resources.</summary>
    private static bool LooksLikeId(ReadOnlySpan<char> segment)
        => segment.IndexOfAny('_', '-') > 0 &&
           !segment.SequenceEqual("input_items") &&
           !segment.SequenceEqual("input_tokens") &&
           AffinityId.IsValid(segment);

    /// <summary>The path of a URI without allocating: its original string past the authority, before query and fragment.</summary>
    private static ReadOnlySpan<char> PathOf(Uri? uri)
    {
        if (uri is null)
        {
            return [];
        }

        var text = uri.OriginalString.AsSpan();
        if (uri.IsAbsoluteUri)
        {
            var scheme = text.IndexOf("://", StringComparison.Ordinal);
            if (scheme >= 0)
            {
                text = text[(scheme + 3)..];
                var slash = text.IndexOf('/');
                text = slash < 0 ? [] : text[slash..];
            }
        }

        var end = text.IndexOfAny('?', '#');
        return end < 0 ? text : text[..end];
    }
}
