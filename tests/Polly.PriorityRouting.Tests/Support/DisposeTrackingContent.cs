namespace Polly.PriorityRouting.Tests.Support;

/// <summary>Content that remembers whether it was disposed, to prove discarded responses are released.</summary>
internal sealed class DisposeTrackingContent : StringContent
{
    public DisposeTrackingContent(string content)
        : base(content)
    {
    }

    public bool IsDisposed { get; private set; }

    protected override void Dispose(bool disposing)
    {
        IsDisposed = true;
        base.Dispose(disposing);
    }
}
