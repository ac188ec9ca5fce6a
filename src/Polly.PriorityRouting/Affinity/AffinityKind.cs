namespace Polly.PriorityRouting;

/// <summary>The kinds of server-side state that pin a request to the backend that created it.</summary>
internal enum AffinityKind
{
    /// <summary>Not an id that pins.</summary>
    None,

    /// <summary>A stored response of the Responses API (<c>resp_…</c>).</summary>
    Response,

    /// <summary>A conversation (<c>conv_…</c>).</summary>
    Conversation,

    /// <summary>A file (<c>file-…</c>).</summary>
    File,

    /// <summary>A batch (<c>batch_…</c>).</summary>
    Batch,

    /// <summary>A vector store (<c>vs_…</c>).</summary>
    VectorStore,

    /// <summary>A container (<c>cntr_…</c>).</summary>
    Container,

    /// <summary>An Assistants thread (<c>thread_…</c>).</summary>
    Thread,

    /// <summary>An assistant (<c>asst_…</c>).</summary>
    Assistant,
}
