namespace Polly.PriorityRouting;

/// <summary>The kinds of server-side state of the OpenAI and Azure OpenAI APIs.</summary>
internal static class OpenAIAffinityKinds
{
    /// <summary>A stored response of the Responses API (<c>resp_…</c>).</summary>
    public static readonly AffinityIdKind Response = AffinityIdKind.WithResponseLifetime("stored response");

    /// <summary>A conversation (<c>conv_…</c>).</summary>
    public static readonly AffinityIdKind Conversation = AffinityIdKind.WithResponseLifetime("conversation");

    /// <summary>
    /// A reasoning item (<c>rs_…</c>) of a Responses answer, sent back in a later request's <c>input</c> (with its
    /// <c>encrypted_content</c> when the response is not stored): kept as long as a stored response.
    /// </summary>
    public static readonly AffinityIdKind ReasoningItem = AffinityIdKind.WithResponseLifetime("reasoning item");

    /// <summary>A file (<c>file-…</c>).</summary>
    public static readonly AffinityIdKind File = new("file");

    /// <summary>A batch (<c>batch_…</c>).</summary>
    public static readonly AffinityIdKind Batch = new("batch");

    /// <summary>A vector store (<c>vs_…</c>).</summary>
    public static readonly AffinityIdKind VectorStore = new("vector store");

    /// <summary>A container (<c>cntr_…</c>).</summary>
    public static readonly AffinityIdKind Container = new("container");

    /// <summary>An Assistants thread (<c>thread_…</c>), and the runs created in it (<c>run_…</c>).</summary>
    public static readonly AffinityIdKind Thread = new("Assistants thread");

    /// <summary>An assistant (<c>asst_…</c>).</summary>
    public static readonly AffinityIdKind Assistant = new("assistant");
}
