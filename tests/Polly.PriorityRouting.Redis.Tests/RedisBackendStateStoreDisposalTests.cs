using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Polly.PriorityRouting.Redis.Tests;

public sealed class RedisBackendStateStoreDisposalTests
{
    [Fact]
    public async Task Dispose_DoesNotWaitForTheAsynchronousCloseOfTheConnection()
    {
        var multiplexer = MultiplexerWhoseAsyncCloseNeverEnds.Create(out var probe);
        var store = new RedisBackendStateStore(
            Task.FromResult(multiplexer),
            ownsConnection: true,
            new RedisStoreLayout("dispose:", "dispose:events"),
            new PriorityRoutingRedisStoreOptions(),
            TimeProvider.System,
            NullLogger<RedisBackendStateStore>.Instance);
        await Eventually(() => probe.EventHandlersAdded == 3, "the store hooks the connection events (failed, restored, configuration changed)");

        var disposing = Task.Run(store.Dispose);

        await disposing.WaitAsync(TimeSpan.FromSeconds(10));
        probe.SynchronousDisposals.Should().Be(1, "the connection is closed synchronously, as Dispose promises");
        probe.EventHandlersAdded.Should().Be(probe.EventHandlersRemoved);
    }

    private static async Task Eventually(Func<bool> condition, string description)
        => await Support.Eventually.HoldsAsync(condition, TimeSpan.FromSeconds(5), description);

    /// <summary>
    /// An <see cref="IConnectionMultiplexer"/> that is never connected and whose <c>DisposeAsync</c> never completes.
    /// </summary>
    public class MultiplexerWhoseAsyncCloseNeverEnds : DispatchProxy
    {
        private Probe _probe = null!;

        public static IConnectionMultiplexer Create(out Probe probe)
        {
            var multiplexer = Create<IConnectionMultiplexer, MultiplexerWhoseAsyncCloseNeverEnds>();
            probe = new Probe();
            ((MultiplexerWhoseAsyncCloseNeverEnds)(object)multiplexer)._probe = probe;
            return multiplexer;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            switch (targetMethod!.Name)
            {
                case "get_IsConnected":
                    return false;
                case "get_Configuration":
                    return "127.0.0.1:1";
                case "DisposeAsync":
                    return new ValueTask(new TaskCompletionSource().Task);
                case "Dispose":
                    _probe.Disposed();
                    return null;
                case "GetSubscriber":
                    throw new ObjectDisposedException("multiplexer");
                case var name when name.StartsWith("add_", StringComparison.Ordinal):
                    _probe.Added();
                    return null;
                case var name when name.StartsWith("remove_", StringComparison.Ordinal):
                    _probe.Removed();
                    return null;
                default:
                    return targetMethod.ReturnType.IsValueType && targetMethod.ReturnType != typeof(void)
                        ? Activator.CreateInstance(targetMethod.ReturnType)
                        : null;
            }
        }
    }

    public sealed class Probe
    {
        private int _synchronousDisposals;
        private int _eventHandlersAdded;
        private int _eventHandlersRemoved;

        public int SynchronousDisposals => Volatile.Read(ref _synchronousDisposals);

        public int EventHandlersAdded => Volatile.Read(ref _eventHandlersAdded);

        public int EventHandlersRemoved => Volatile.Read(ref _eventHandlersRemoved);

        public void Disposed() => Interlocked.Increment(ref _synchronousDisposals);

        public void Added() => Interlocked.Increment(ref _eventHandlersAdded);

        public void Removed() => Interlocked.Increment(ref _eventHandlersRemoved);
    }
}
