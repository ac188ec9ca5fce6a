using System.ClientModel.Primitives;
using System.Collections.Concurrent;

namespace Polly.PriorityRouting.SdkTests.Support;

/// <summary>
/// A per-try SDK pipeline policy that records the status code of every attempt the SDK itself makes, so a test can
/// tell the SDK's own retries apart from the retries inside the <see cref="HttpClient"/>.
/// </summary>
internal sealed class SdkAttemptRecorder : PipelinePolicy
{
    public ConcurrentQueue<int> Statuses { get; } = new();

    public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        ProcessNext(message, pipeline, currentIndex);
        Statuses.Enqueue(message.Response?.Status ?? 0);
    }

    public override async ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        await ProcessNextAsync(message, pipeline, currentIndex);
        Statuses.Enqueue(message.Response?.Status ?? 0);
    }
}
