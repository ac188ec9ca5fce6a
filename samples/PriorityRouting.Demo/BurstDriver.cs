using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace PriorityRouting.Demo;

/// <summary>
/// Sends chat completions at a fixed rate (open loop, capped by a concurrency limit), prints one progress line per
/// second, and reports what the caller saw.
/// </summary>
/// <remarks>
/// With several clients (one per replica), call <c>i</c> goes to client <c>i mod n</c>: each replica is offered
/// <c>rate / n</c>. <paramref name="afterProgress"/> runs after each progress line (the metrics lines).
/// </remarks>
internal sealed class BurstDriver(DemoOptions options, IReadOnlyList<FakeAzureOpenAiBackend> backends, Action? afterProgress = null)
{
    private const string ChatCompletionPath = "openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";
    private const string ChatCompletionBody =
        """{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}""";

    private int _succeeded;
    private int _failed;

    public async Task<BurstResult> RunAsync(IReadOnlyList<HttpClient> clients)
    {
        var total = (int)Math.Round(options.Rate * options.Duration.TotalSeconds);
        var latencies = new ConcurrentBag<TimeSpan>();
        using var slots = new SemaphoreSlim(options.Concurrency);
        using var progressStop = new CancellationTokenSource();
        var start = Stopwatch.GetTimestamp();
        var progress = ReportProgressAsync(start, total, progressStop.Token);

        var calls = new List<Task>(total);
        for (var i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds(i / options.Rate) - Stopwatch.GetElapsedTime(start);
            if (due > TimeSpan.Zero)
            {
                await Task.Delay(due).ConfigureAwait(false);
            }

            await slots.WaitAsync().ConfigureAwait(false);
            calls.Add(CallAsync(clients[i % clients.Count], slots, latencies));
        }

        await Task.WhenAll(calls).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start);
        await progressStop.CancelAsync().ConfigureAwait(false);
        await progress.ConfigureAwait(false);

        var sorted = latencies.ToArray();
        Array.Sort(sorted);
        return new BurstResult(total, _succeeded, _failed, sorted, elapsed);
    }

    private async Task CallAsync(HttpClient client, SemaphoreSlim slots, ConcurrentBag<TimeSpan> latencies)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var content = new StringContent(ChatCompletionBody, Encoding.UTF8, "application/json");
            using var response = await client.PostAsync(ChatCompletionPath, content).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                latencies.Add(Stopwatch.GetElapsedTime(started));
                Interlocked.Increment(ref _succeeded);
            }
            else
            {
                Interlocked.Increment(ref _failed);
            }
        }
        catch (Exception)
        {
            // Timeouts, an open circuit breaker, refused connections: the caller sees a failure either way.
            Interlocked.Increment(ref _failed);
        }
        finally
        {
            slots.Release();
        }
    }

    private async Task ReportProgressAsync(long start, int total, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                var line = new StringBuilder();
                line.Append(CultureInfo.InvariantCulture,
                    $"  {Stopwatch.GetElapsedTime(start).TotalSeconds,4:0}s  ok {Volatile.Read(ref _succeeded),5}/{total}  failed {Volatile.Read(ref _failed),4}  |");
                foreach (var backend in backends)
                {
                    line.Append(CultureInfo.InvariantCulture,
                        $"  {backend.Spec.Name} {backend.Statistics.Ok,4} ok {backend.Statistics.Throttled,4}x429");
                }

                Console.WriteLine(line.ToString());
                afterProgress?.Invoke();
            }
        }
        catch (OperationCanceledException)
        {
            // The burst is over.
        }
    }
}
