using System.ClientModel.Primitives;
using System.Collections.Concurrent;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A per-try SDK pipeline policy that records the status code (and <c>retry-after-ms</c>) of every attempt the SDK
/// itself makes, so a test can tell the SDK's own retries apart from the retries inside the <see cref="HttpClient"/>.
/// </summary>
internal sealed class SdkAttemptRecorder : PipelinePolicy
{
    public ConcurrentQueue<(int Status, string? RetryAfterMs)> Attempts { get; } = new();

    /// <summary>Gets each attempt's <c>Retry-After</c> (whole seconds), in the order of <see cref="Attempts"/>.</summary>
    public ConcurrentQueue<string?> RetryAfter { get; } = new();

    public IReadOnlyList<int> Statuses => [.. Attempts.Select(a => a.Status)];

    public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        ProcessNext(message, pipeline, currentIndex);
        Record(message);
    }

    public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        await ProcessNextAsync(message, pipeline, currentIndex);
        Record(message);
    }

    private void Record(PipelineMessage message)
    {
        string? retryAfterMs = null;
        string? retryAfter = null;
        message.Response?.Headers.TryGetValue("retry-after-ms", out retryAfterMs);
        message.Response?.Headers.TryGetValue("Retry-After", out retryAfter);
        RetryAfter.Enqueue(retryAfter);
        Attempts.Enqueue((message.Response?.Status ?? 0, retryAfterMs));
    }
}
