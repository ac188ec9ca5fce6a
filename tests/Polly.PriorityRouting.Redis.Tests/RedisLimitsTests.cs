using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Redis.Tests.Support;

namespace Polly.PriorityRouting.Redis.Tests;

/// <summary>
/// Concurrency caps and declared quotas with two replicas over one real Redis: both are counted per process (what each
/// replica has in flight, what each has spent), as documented in configuration.md.
/// </summary>
public sealed class RedisLimitsTests : IClassFixture<RedisServerFixture>
{
    private readonly RedisServerFixture _redis;

    public RedisLimitsTests(RedisServerFixture redis) => _redis = redis;

    [Fact]
    public async Task A_cap_holds_per_replica_over_a_shared_Redis_store()
    {
        await using var primary = await FakeBackendServer.StartAsync(throttles: false);
        await using var secondary = await FakeBackendServer.StartAsync(throttles: false);
        var keyPrefix = $"test:{Guid.NewGuid():N}:";
        await using var hostA = await StartAsync(keyPrefix, primary, secondary, backend => backend.MaxConcurrentRequests = 1);
        await using var hostB = await StartAsync(keyPrefix, primary, secondary, backend => backend.MaxConcurrentRequests = 1);

        using var held = await hostA.CreateClient().SendAsync(new HttpRequestMessage(HttpMethod.Get, RoutedHost.AnyPath), HttpCompletionOption.ResponseHeadersRead);
        (await hostA.CreateClient().SendAsync(1)).Should().Be(0);
        (primary.Hits, secondary.Hits).Should().Be((1, 1), "replica A's second request found the primary at A's cap");

        (await hostB.CreateClient().SendAsync(1)).Should().Be(0);
        (primary.Hits, secondary.Hits).Should().Be((2, 1), "replica B counts only its own requests in flight");
    }

    [Fact]
    public async Task A_declared_quota_is_spent_per_replica_when_the_backend_reports_no_budget()
    {
        await using var primary = await FakeBackendServer.StartAsync(throttles: false);
        await using var secondary = await FakeBackendServer.StartAsync(throttles: false);
        var keyPrefix = $"test:{Guid.NewGuid():N}:";
        await using var hostA = await StartAsync(keyPrefix, primary, secondary, backend => backend.TokensPerMinute = 1000);
        await using var hostB = await StartAsync(keyPrefix, primary, secondary, backend => backend.TokensPerMinute = 1000);

        (await SendChatAsync(hostA, maxTokens: 600)).Should().Be(HttpStatusCode.OK);
        (await SendChatAsync(hostA, maxTokens: 600)).Should().Be(HttpStatusCode.OK);
        (await SendChatAsync(hostB, maxTokens: 600)).Should().Be(HttpStatusCode.OK);

        (primary.Hits, secondary.Hits).Should().Be((2, 1), "A's second request did not fit A's quota; B has spent nothing of its own");
        hostA.RedisStore.PeerCount.Should().Be(0, "a declared quota is never published: replicas learn of peers from reported budgets only");
    }

    private async Task<Replica> StartAsync(string keyPrefix, FakeBackendServer primary, FakeBackendServer secondary, Action<PriorityBackend> limitPrimary)
        => await Replica.StartAsync(_redis.Configuration, keyPrefix, DateTimeOffset.UtcNow, services => services
            .AddHttpClient(RoutedHost.ClientName)
            .AddResilienceHandler("priority", (builder, context) =>
            {
                var first = new PriorityBackend { Name = "primary", BaseAddress = primary.BaseAddress, Priority = 1 };
                limitPrimary(first);
                builder.AddPriorityRouting(new PriorityRoutingStrategyOptions
                {
                    StateStore = context.ServiceProvider.GetRequiredService<IBackendStateStore>(),
                    Backends = [first, new PriorityBackend { Name = "secondary", BaseAddress = secondary.BaseAddress, Priority = 2 }],
                });
            }));

    private static async Task<HttpStatusCode> SendChatAsync(Replica replica, int maxTokens)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, RoutedHost.AnyPath)
        {
            Content = new StringContent($$"""{"messages":[{"role":"user","content":"hi"}],"max_tokens":{{maxTokens}}}""", Encoding.UTF8, "application/json"),
        };
        using var answer = await replica.CreateClient().SendAsync(request);
        return answer.StatusCode;
    }
}
