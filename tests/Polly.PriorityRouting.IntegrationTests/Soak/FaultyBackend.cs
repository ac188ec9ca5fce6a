using System.Globalization;
using Microsoft.AspNetCore.Http;
using Polly.PriorityRouting.IntegrationTests.Support;

namespace Polly.PriorityRouting.IntegrationTests.Soak;

/// <summary>
/// A <see cref="FakeBackend"/> that misbehaves at random, but reproducibly: the fate of its n-th hit is a pure function
/// of (seed, backend, n). It throttles (429 with a few hundred milliseconds in <c>retry-after-ms</c>,
/// <c>x-ms-retry-after-ms</c> or <c>Retry-After</c>), fails with 5xx, resets the connection, hangs past the attempt
/// timeout, or answers the expected body — half of the time streamed in flushed chunks.
/// </summary>
internal sealed class FaultyBackend
{
    /// <summary>Carries the announced deadline (UTC ticks) of a 429, so the client can tell which announcements it heard.</summary>
    public const string DeadlineHeader = "x-soak-throttled-until";

    private const int Pieces = 8;

    // Per-hit probabilities. Low on purpose: a failed backend stays out for 100..600 ms while it would otherwise serve
    // about a thousand hits a second, so a few failures per thousand hits already keep each backend out a good part of
    // the time and every tier exhausted now and then.
    private const double ThrottleRate = 0.003;
    private const double ServerErrorRate = 0.002;
    private const double ResetRate = 0.0015;
    private const double HangRate = 0.001;

    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(2);

    private readonly ulong _seed;
    private long _maxAnnouncedTicks;
    private int _throttles;
    private int _serverErrors;
    private int _resets;
    private int _hangs;
    private int _streamed;

    public FaultyBackend(FakeBackend backend, int index, int priority, ulong seed)
    {
        Backend = backend;
        Index = index;
        Priority = priority;
        _seed = seed ^ ((ulong)(index + 1) * 0x9E3779B97F4A7C15UL);
        backend.Behave(HandleAsync);
    }

    public FakeBackend Backend { get; }

    public string Name => Backend.Name;

    public int Index { get; }

    public int Priority { get; }

    /// <summary>Gets the latest throttle deadline this backend announced, or <see langword="null"/>.</summary>
    public DateTimeOffset? MaxAnnounced
        => Interlocked.Read(ref _maxAnnouncedTicks) is var ticks and > 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    public int Throttles => Volatile.Read(ref _throttles);

    public int ServerErrors => Volatile.Read(ref _serverErrors);

    public int Resets => Volatile.Read(ref _resets);

    public int Hangs => Volatile.Read(ref _hangs);

    public int Streamed => Volatile.Read(ref _streamed);

    /// <summary>The body every backend answers for a request id, whichever backend it is.</summary>
    public static string ExpectedBody(string id)
        => string.Concat(Enumerable.Range(0, Pieces).Select(k => Piece(id, k)));

    public static void RaiseToAtLeast(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private static string Piece(string id, int k) => string.Create(CultureInfo.InvariantCulture, $"{id}:{k};");

    /// <summary>SplitMix64: a well-mixed, stateless hash of (seed, hit).</summary>
    private static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    private async Task HandleAsync(HttpContext context, int hit)
    {
        var bits = Mix(_seed ^ Mix((ulong)hit));
        var roll = (bits >> 11) * (1.0 / (1UL << 53));
        var detail = (int)(bits & 0xFFFF);

        if (roll < ThrottleRate)
        {
            Interlocked.Increment(ref _throttles);
            await ThrottleAsync(context, detail);
            return;
        }

        roll -= ThrottleRate;
        if (roll < ServerErrorRate)
        {
            Interlocked.Increment(ref _serverErrors);
            await FakeBackend.Status(context, (detail % 3) switch { 0 => 500, 1 => 502, _ => 503 });
            return;
        }

        roll -= ServerErrorRate;
        if (roll < ResetRate)
        {
            Interlocked.Increment(ref _resets);
            context.Abort();
            return;
        }

        roll -= ResetRate;
        if (roll < HangRate)
        {
            Interlocked.Increment(ref _hangs);
            try
            {
                await Task.Delay(HangLimit, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                // The client's attempt timeout gave up and closed the connection: exactly what a hang should cause.
            }

            return;
        }

        var id = context.Request.Path.Value!.Split('/')[^1];
        context.Response.ContentType = "text/plain";
        if ((detail & 1) == 0)
        {
            var body = ExpectedBody(id);
            context.Response.ContentLength = body.Length;
            await context.Response.WriteAsync(body, context.RequestAborted);
            return;
        }

        // Streamed: chunked transfer, each piece flushed on its own.
        Interlocked.Increment(ref _streamed);
        for (var k = 0; k < Pieces; k++)
        {
            await context.Response.WriteAsync(Piece(id, k), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    private Task ThrottleAsync(HttpContext context, int detail)
    {
        var milliseconds = 100 + (detail % 500);
        var ms = milliseconds.ToString(CultureInfo.InvariantCulture);
        var (name, value, cooldown) = (detail >> 9 & 3) switch
        {
            0 => ("retry-after-ms", ms, TimeSpan.FromMilliseconds(milliseconds)),
            1 => ("x-ms-retry-after-ms", ms, TimeSpan.FromMilliseconds(milliseconds)),
            2 => ("Retry-After", "1", TimeSpan.FromSeconds(1)),

            // Azure's pair: whole seconds for everyone, milliseconds for those who read them (the precise one wins).
            _ => ("retry-after-ms", ms, TimeSpan.FromMilliseconds(milliseconds)),
        };

        var until = DateTimeOffset.UtcNow + cooldown;
        RaiseToAtLeast(ref _maxAnnouncedTicks, until.UtcTicks);
        var headers = new List<(string, string)> { (name, value), (DeadlineHeader, until.UtcTicks.ToString(CultureInfo.InvariantCulture)) };
        if ((detail >> 9 & 3) == 3)
        {
            headers.Add(("Retry-After", "1"));
        }

        return FakeBackend.Status(context, 429, [.. headers]);
    }
}
