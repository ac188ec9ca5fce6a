using System.Globalization;
using System.Net;

namespace Polly.PriorityRouting.IntegrationTests.Soak;

/// <summary>
/// Sits under the resilience handler, so it sees every attempt as the strategy does: which throttle announcements
/// actually reached the client (one written after the attempt timeout fired never does), and when each backend last
/// failed.
/// </summary>
internal sealed class AttemptObserver(IReadOnlyList<FaultyBackend> backends, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private readonly long[] _heardTicks = new long[backends.Count];
    private readonly long[] _lastFailureTicks = new long[backends.Count];
    private readonly int[] _heard = new int[backends.Count];

    public DateTimeOffset? Heard(int index) => At(Interlocked.Read(ref _heardTicks[index]));

    public DateTimeOffset? LastFailure(int index) => At(Interlocked.Read(ref _lastFailureTicks[index]));

    public int HeardCount(int index) => Volatile.Read(ref _heard[index]);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var index = IndexOf(request.RequestUri!);
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                Failed(index);
            }

            if (response.Headers.TryGetValues(FaultyBackend.DeadlineHeader, out var values))
            {
                Interlocked.Increment(ref _heard[index]);
                FaultyBackend.RaiseToAtLeast(ref _heardTicks[index], long.Parse(values.Single(), CultureInfo.InvariantCulture));
            }

            return response;
        }
        catch
        {
            Failed(index);
            throw;
        }
    }

    private static DateTimeOffset? At(long ticks) => ticks > 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    private void Failed(int index) => FaultyBackend.RaiseToAtLeast(ref _lastFailureTicks[index], DateTimeOffset.UtcNow.UtcTicks);

    private int IndexOf(Uri uri)
    {
        foreach (var backend in backends)
        {
            if (backend.Backend.Address.Port == uri.Port)
            {
                return backend.Index;
            }
        }

        throw new InvalidOperationException($"An attempt went to {uri}, which is no soak backend.");
    }
}
