using Microsoft.Extensions.Time.Testing;

namespace PriorityRouting.Simulation.Tests;

public class CompletionPerRequestTests
{
    private const int Seed = 42;
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_request_takes_as_long_on_any_backend_whatever_was_admitted_before_it()
    {
        // The classes scenario's baseline: the foreground request alone, on the PTU.
        var alone = new Network();
        var baseline = await alone.CompletionOf("ptu", sequence: 7);

        // The run with background: three other requests admitted first, and the same request served by the other backend.
        var busy = new Network();
        foreach (var other in new long[] { 1, 2, 3 })
        {
            await busy.CompletionOf("paygo", other);
        }

        var withBackground = await busy.CompletionOf("paygo", sequence: 7);
        var retried = await busy.CompletionOf("ptu", sequence: 7);

        (withBackground, retried).Should().Be((baseline, baseline));
        (await alone.CompletionOf("ptu", sequence: 8)).Should().NotBe(baseline, "each request has its own length");
    }

    [Fact]
    public void Completion_times_drawn_per_request_have_the_configured_median_and_95th_percentile()
    {
        var draws = Enumerable.Range(0, 20_000).Select(sequence => CompletionTimes.Chat.For(Seed, sequence)).ToList();
        var completions = draws.Select(d => d.Completion.TotalSeconds).Order().ToList();

        completions[10_000].Should().BeApproximately(2, 0.1);
        completions[19_000].Should().BeApproximately(15, 1.5);
        draws.Count(d => d.Headers < d.Completion).Should().BeInRange(8_500, 10_400, "half the answers are streamed, less those shorter than their first token");
        CompletionTimes.Chat.For(Seed, 7).Should().Be(CompletionTimes.Chat.For(Seed, 7));
        CompletionTimes.Chat.For(Seed + 1, 7).Should().NotBe(CompletionTimes.Chat.For(Seed, 7), "another seed is another run");
    }

    // Two backends with room to spare, completions in flight, on a virtual clock.
    private sealed class Network
    {
        private readonly FakeTimeProvider _time = new(Start);
        private readonly VirtualDelays _delays;
        private readonly HttpMessageInvoker _invoker;

        public Network()
        {
            _delays = new VirtualDelays(_time, new DeterministicSynchronizationContext());
            SimulatedBackend[] backends =
            [
                new(new SimulatedBackendSpec("ptu", 1, 1_000_000), new VirtualTokenBucket(1_000_000, TimeSpan.FromSeconds(10), Start, TimeSpan.Zero)),
                new(new SimulatedBackendSpec("paygo", 2, 1_000_000), new VirtualTokenBucket(1_000_000, TimeSpan.FromSeconds(10), Start, TimeSpan.Zero)),
            ];
            _invoker = new HttpMessageInvoker(
                new InMemoryBackendTransport(backends, _time, Start, Start.AddHours(1), tokens: true, CompletionTimes.Chat, _delays, Seed));
        }

        /// <summary>Sends one request and returns when its last token arrives, counted from when it was sent.</summary>
        public async Task<TimeSpan> CompletionOf(string backend, long sequence)
        {
            var requests = new SimulatedRequests(new SimulationScenario("mixed", [], MixedSizes: true), Seed);
            using var request = requests.Create(new Uri($"http://{backend}/"), index: 0, background: false, sequence);
            var sent = _time.GetUtcNow();
            var answeredAt = sent;
            var call = _invoker.SendAsync(request, CancellationToken.None);
            _ = call.ContinueWith(_ => answeredAt = _time.GetUtcNow(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            _delays.AdvanceTo(sent + CompletionTimes.Chat.Max + TimeSpan.FromSeconds(1));
            using var response = await call;
            response.EnsureSuccessStatusCode();
            var remaining = double.Parse(response.Headers.GetValues(SimulatedRequests.RemainingMillisecondsHeader).Single(), System.Globalization.CultureInfo.InvariantCulture);
            return answeredAt - sent + TimeSpan.FromMilliseconds(remaining);
        }
    }
}
