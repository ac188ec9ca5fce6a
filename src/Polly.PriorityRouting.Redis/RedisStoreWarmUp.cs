using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting.Redis;

/// <summary>
/// Starts the Redis store when the host starts, and holds the start until the first load of the shared state, at most
/// <see cref="PriorityRoutingRedisStoreOptions.FirstLoadTimeout"/>: a fresh replica's first request then skips the
/// backends the other replicas marked, instead of paying its own 429. Without it the store would connect only when the
/// first client is built, on the first request.
/// </summary>
/// <remarks>
/// Fail-open: the wait ends at once when Redis is found unreachable, and at the bound when it is slow; the store then
/// goes on as during any outage.
/// </remarks>
internal sealed class RedisStoreWarmUp : IHostedService
{
    private readonly IServiceProvider _services;
    private readonly TimeSpan _timeout;

    public RedisStoreWarmUp(IServiceProvider services, IOptions<PriorityRoutingRedisStoreOptions> options)
    {
        _services = services;
        _timeout = options.Value.FirstLoadTimeout;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Replaced by another store after the Redis one was registered: nothing to warm up.
        if (RedisReservingStateStore.Find(_services.GetService(typeof(IBackendStateStore))) is { } store)
        {
            await store.WaitForFirstLoadAsync(_timeout, cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
