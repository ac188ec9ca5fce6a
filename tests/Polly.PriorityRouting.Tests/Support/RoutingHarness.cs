using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// A priority routing pipeline on a fake clock, executed through the real <see cref="ResilienceHandler"/> over an
/// in-memory transport.
/// </summary>
internal sealed class RoutingHarness : IDisposable
{
    public RoutingHarness(Action<PriorityRoutingStrategyOptions>? configure = null, params PriorityBackend[] backends)
        : this(configure, null, backends)
    {
    }

    public RoutingHarness(Action<PriorityRoutingStrategyOptions>? configure, string? pipelineName, params PriorityBackend[] backends)
        : this(configure, pipelineName, null, backends)
    {
    }

    /// <summary>A harness on the given fake clock (e.g. a <see cref="LateTimerTimeProvider"/>).</summary>
    public RoutingHarness(Action<PriorityRoutingStrategyOptions>? configure, string? pipelineName, FakeTimeProvider? time, params PriorityBackend[] backends)
    {
        Time = time ?? new FakeTimeProvider(Start);
        Options = new PriorityRoutingStrategyOptions
        {
            Backends = backends.Length > 0 ? [.. backends] : [Backend("a", 1), Backend("b", 1), Backend("c", 2)],
            StateStore = Store,
        };
        configure?.Invoke(Options);
        Pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = Time, Name = pipelineName }
            .AddPriorityRouting(Options)
            .Build();
        Client = new HttpClient(new ResilienceHandler(Pipeline) { InnerHandler = Transport })
        {
            BaseAddress = new Uri("http://placeholder/"),
        };
    }

    /// <summary>The moment every harness clock starts at.</summary>
    public static DateTimeOffset Start { get; } = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    public FakeTimeProvider Time { get; }

    public InMemoryBackendStateStore Store { get; } = new();

    public RecordingHandler Transport { get; } = new();

    public PriorityRoutingStrategyOptions Options { get; }

    public ResiliencePipeline<HttpResponseMessage> Pipeline { get; }

    public HttpClient Client { get; }

    /// <summary>A backend whose host is its name, e.g. <c>http://a/</c>.</summary>
    public static PriorityBackend Backend(string name, int priority, int weight = 1)
        => new() { Name = name, BaseAddress = new Uri($"http://{name}/"), Priority = priority, Weight = weight };

    /// <summary>The store key of a backend made by <see cref="Backend"/>: its name and address.</summary>
    public static BackendStateKey Key(string name, string? partition = null) => new($"{name}@http://{name}", partition);

    public BackendUnavailability? StateOf(string name, string? partition = null)
        => Store.TryGetUnavailability(Key(name, partition), out var state) ? state : null;

    public void Dispose() => Client.Dispose();
}
