using System.Net;
using Microsoft.Extensions.Http.Resilience;

namespace Polly.PriorityRouting.Tests.Streaming;

/// <summary>
/// Reads and disposes of watched bodies at the same time, on many threads: the stall timer must never be changed once
/// disposed, nor created after the body was disposed.
/// </summary>
/// <remarks>
/// The clock's timers never fire (the stall timeout is an hour): they only count what is done to them, and take a
/// moment to create or change, as a real timer does (it takes the timer queue's lock), so the test is about ordering,
/// not time. Bounded: a fixed number of bodies; it passes deterministically once the timer is guarded. Before the guard,
/// about nine bodies in ten changed a disposed timer.
/// </remarks>
public sealed class WatchedStreamStressTests
{
    private const int Workers = 2;
    private const int BodiesPerWorker = 200;

    [Fact]
    public async Task Reading_and_disposing_a_watched_body_at_once_never_touches_a_disposed_stall_timer_nor_leaves_one_behind()
    {
        var time = new CountingTimeProvider();
        var options = new PriorityRoutingStrategyOptions
        {
            Backends = [new PriorityBackend { Name = "a", BaseAddress = new Uri("http://a/") }],
            StateStore = new InMemoryBackendStateStore(),
            StreamStallTimeout = TimeSpan.FromHours(1),
        };
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }.AddPriorityRouting(options).Build();
        using var client = new HttpClient(new ResilienceHandler(pipeline) { InnerHandler = new EndlessBodyHandler() }) { BaseAddress = new Uri("http://placeholder/") };

        var unexpected = await Task.WhenAll(Enumerable.Range(0, Workers).Select(worker => Task.Run(() => RaceAsync(client, worker))));

        unexpected.SelectMany(failures => failures).Should().BeEmpty("a read never sees anything but the transport's own end");
        time.ChangedAfterDispose.Should().Be(0, "no stall timer is changed once disposed");
        time.Live.Should().Be(0, "every stall timer is disposed with its body, none is created after");
        time.Created.Should().BeGreaterThan(0, "the reads did wait, so timers were armed");
    }

    private static async Task<List<Exception>> RaceAsync(HttpClient client, int worker)
    {
        var failures = new List<Exception>();
        var random = new Random(worker);
        for (var i = 0; i < BodiesPerWorker; i++)
        {
            using var response = await client.GetAsync("/chat", HttpCompletionOption.ResponseHeadersRead);
            var body = await response.Content.ReadAsStreamAsync();
            var reads = 0;
            var reader = Task.Run(async () =>
            {
                var buffer = new byte[4];
                try
                {
                    while (true)
                    {
                        Interlocked.Increment(ref reads);
                        if (await body.ReadAsync(buffer) == 0)
                        {
                            return null;
                        }
                    }
                }
                catch (ObjectDisposedException)
                {
                    // The transport's own answer to a read on a disposed body (or a timer changed after disposal,
                    // which the clock counts).
                    return null;
                }
                catch (Exception e)
                {
                    return e;
                }
            });

            // Dispose while the reader is busy: after a few reads, at a point of the read cycle that varies.
            var readsBeforeDispose = random.Next(1, 4);
            var waiting = default(SpinWait);
            while (Volatile.Read(ref reads) < readsBeforeDispose && !reader.IsCompleted)
            {
                // Yields now and then: on a busy machine the reader needs the core this loop would hold.
                waiting.SpinOnce();
            }

            Thread.SpinWait(random.Next(0, 400));
            body.Dispose();
            if (await reader is { } failure)
            {
                failures.Add(failure);
            }
        }

        return failures;
    }

    /// <summary>A fresh 200 whose body yields a byte per read, asynchronously, until it is disposed.</summary>
    private sealed class EndlessBodyHandler : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new EndlessStream()) });
    }

    private sealed class EndlessStream : Stream
    {
        private volatile bool _disposed;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            ObjectDisposedException.ThrowIf(_disposed, this);
            buffer.Span[0] = (byte)'x';
            return 1;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            _disposed = true;
            base.Dispose(disposing);
        }
    }

    /// <summary>The system clock, with timers that never fire and count what is done to them.</summary>
    private sealed class CountingTimeProvider : TimeProvider
    {
        private const int SpinsPerTimerCall = 100;

        private int _created;
        private int _disposed;
        private int _changedAfterDispose;

        public int Created => Volatile.Read(ref _created);

        public int Live => Created - Volatile.Read(ref _disposed);

        public int ChangedAfterDispose => Volatile.Read(ref _changedAfterDispose);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            // A timer takes a moment to create, as a real one does (it takes the timer queue's lock): the caller may be
            // preempted here, which widens the window a dispose on another thread can fall into.
            Thread.SpinWait(SpinsPerTimerCall);
            Interlocked.Increment(ref _created);
            return new CountingTimer(this);
        }

        private sealed class CountingTimer(CountingTimeProvider owner) : ITimer
        {
            private int _isDisposed;

            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                Thread.SpinWait(SpinsPerTimerCall);
                if (Volatile.Read(ref _isDisposed) != 0)
                {
                    Interlocked.Increment(ref owner._changedAfterDispose);

                    // What System.Threading.Timer does: the caller's read loop would see it.
                    throw new ObjectDisposedException(nameof(ITimer));
                }

                return true;
            }

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _isDisposed, 1) == 0)
                {
                    Interlocked.Increment(ref owner._disposed);
                }
            }

            public ValueTask DisposeAsync()
            {
                Dispose();
                return default;
            }
        }
    }
}
