using BenchmarkDotNet.Attributes;

namespace Polly.PriorityRouting.Benchmarks;

/// <summary>
/// Where the per-request allocations of priority routing come from: the per-attempt request (new message, new URI)
/// measured alone, through the internal <c>AttemptRequest</c> the strategy calls once per attempt.
/// </summary>
[MemoryDiagnoser]
public class AttemptAllocationBenchmarks
{
    private const string PlaceholderAddress = "http://placeholder/openai/deployments/gpt/chat/completions?api-version=2024-10-21";

    private readonly RoutedBackend _backend = new(new PriorityBackend { Name = "ptu", BaseAddress = new Uri("http://backend0/") }, 0);
    private HttpRequestMessage _original = null!;

    [GlobalSetup]
    public void Setup() => _original = new HttpRequestMessage(HttpMethod.Post, PlaceholderAddress);

    [Benchmark(Baseline = true, Description = "new HttpRequestMessage (what the caller pays anyway)")]
    public HttpRequestMessage CallerRequest() => new(HttpMethod.Post, PlaceholderAddress);

    [Benchmark(Description = "AttemptRequest.BuildUri (string + Uri)")]
    public Uri AttemptUri() => AttemptRequest.BuildUri(_original.RequestUri, _backend);

    // A fresh caller request each time: the strategy reads its Headers and Options, which the message creates lazily,
    // so that cost belongs to routing too. Subtract the baseline to get what routing adds per attempt.
    [Benchmark(Description = "new HttpRequestMessage + AttemptRequest.Create")]
    public HttpRequestMessage AttemptMessage() => AttemptRequest.Create(new HttpRequestMessage(HttpMethod.Post, PlaceholderAddress), _backend);
}
