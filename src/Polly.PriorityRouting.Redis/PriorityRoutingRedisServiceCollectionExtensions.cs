using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Polly.PriorityRouting;
using Polly.PriorityRouting.Redis;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers the Redis-backed <see cref="IBackendStateStore"/> that shares throttle state across the replicas of an app.
/// </summary>
public static class PriorityRoutingRedisServiceCollectionExtensions
{
    /// <summary>
    /// Registers a Redis-backed <see cref="IBackendStateStore"/> singleton that connects with its own multiplexer.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string (endpoints, <c>ssl</c>, <c>password</c>, …).</param>
    /// <returns>The service collection, for chaining.</returns>
    /// <remarks>
    /// The connection is made in the background with <c>abortConnect=false</c>: the app starts, and requests are routed
    /// on local state, while Redis is unreachable.
    /// </remarks>
    public static IServiceCollection AddPriorityRoutingRedisStore(this IServiceCollection services, string configuration)
        => services.AddPriorityRoutingRedisStore(configuration, static _ => { });

    /// <summary>
    /// Registers a Redis-backed <see cref="IBackendStateStore"/> singleton that connects with its own multiplexer.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string (endpoints, <c>ssl</c>, <c>password</c>, …).</param>
    /// <param name="configure">Configures the key prefix and channel.</param>
    /// <returns>The service collection, for chaining.</returns>
    public static IServiceCollection AddPriorityRoutingRedisStore(
        this IServiceCollection services,
        string configuration,
        Action<PriorityRoutingRedisStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddPriorityRoutingRedisStore(options =>
        {
            options.Configuration = configuration;
            configure(options);
        });
    }

    /// <summary>
    /// Registers a Redis-backed <see cref="IBackendStateStore"/> singleton that uses the <see cref="IConnectionMultiplexer"/>
    /// registered in the service collection.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>The service collection, for chaining.</returns>
    public static IServiceCollection AddPriorityRoutingRedisStore(this IServiceCollection services)
        => services.AddPriorityRoutingRedisStore(static _ => { });

    /// <summary>
    /// Registers a Redis-backed <see cref="IBackendStateStore"/> singleton configured by <paramref name="configure"/>;
    /// it uses the <see cref="IConnectionMultiplexer"/> registered in the service collection unless
    /// <see cref="PriorityRoutingRedisStoreOptions.Configuration"/> is set.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the connection, key prefix and channel.</param>
    /// <returns>The service collection, for chaining.</returns>
    /// <remarks>
    /// Invalid options surface as an <see cref="OptionsValidationException"/> when the store is first resolved. A hosted
    /// service starts the store with the host and holds the start until the first load of the shared state, at most
    /// <see cref="PriorityRoutingRedisStoreOptions.FirstLoadTimeout"/> (ended at once when Redis is unreachable).
    /// </remarks>
    public static IServiceCollection AddPriorityRoutingRedisStore(
        this IServiceCollection services,
        Action<PriorityRoutingRedisStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);

        services.AddOptions<PriorityRoutingRedisStoreOptions>().Configure(configure);
        services.TryAddEnumerable(
            ServiceDescriptor.Singleton<IValidateOptions<PriorityRoutingRedisStoreOptions>, PriorityRoutingRedisStoreOptionsValidator>());

        // One store per container, and it is the store: it replaces any other registration.
        services.RemoveAll<IBackendStateStore>();
        services.AddSingleton<IBackendStateStore>(CreateStore);

        // Affinity pins are shared through the same connection.
        services.RemoveAll<IAffinityStore>();
        services.AddSingleton<IAffinityStore>(CreateAffinityStore);

        // Loads the shared state when the host starts, so that a fresh replica's first request already uses it.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisStoreWarmUp>());
        return services;
    }

    private static IBackendStateStore CreateStore(IServiceProvider serviceProvider)
    {
        var options = serviceProvider.GetRequiredService<IOptions<PriorityRoutingRedisStoreOptions>>().Value;
        var (connecting, ownsConnection) = options.Configuration is { } configuration
            ? (ConnectInBackground(configuration), true)
            : (Task.FromResult(serviceProvider.GetService<IConnectionMultiplexer>() ?? throw new InvalidOperationException(
                $"The Redis store needs either {nameof(PriorityRoutingRedisStoreOptions)}.{nameof(PriorityRoutingRedisStoreOptions.Configuration)} " +
                $"or an {nameof(IConnectionMultiplexer)} registered in the service collection.")), false);

        var store = new RedisBackendStateStore(
            connecting,
            ownsConnection,
            new RedisStoreLayout(options.KeyPrefix, options.EffectiveChannelName),
            options,
            serviceProvider.GetService<TimeProvider>() ?? TimeProvider.System,
            serviceProvider.GetService<ILogger<RedisBackendStateStore>>() ?? NullLogger<RedisBackendStateStore>.Instance);
        return options.Reservations ? new RedisReservingStateStore(store) : store;
    }

    private static IAffinityStore CreateAffinityStore(IServiceProvider serviceProvider)
        => RedisReservingStateStore.Find(serviceProvider.GetRequiredService<IBackendStateStore>()) is { } store
            ? store.Affinity

            // The throttle store was replaced after this registration: pins stay in this process, as without Redis.
            : new InMemoryAffinityStore(
                InMemoryAffinityStore.DefaultCapacity,
                InMemoryAffinityStore.DefaultStickyCapacity,
                serviceProvider.GetService<TimeProvider>() ?? TimeProvider.System);

    private static Task<IConnectionMultiplexer> ConnectInBackground(string configuration)
    {
        var connection = ConfigurationOptions.Parse(configuration);

        // Never fail app start, never queue writes behind an outage: the store keeps them and publishes them itself.
        connection.AbortOnConnectFail = false;
        connection.BacklogPolicy = BacklogPolicy.FailFast;
        return Task.Run(async () => (IConnectionMultiplexer)await ConnectionMultiplexer.ConnectAsync(connection).ConfigureAwait(false));
    }
}
