using System.ClientModel;
using Microsoft.Extensions.Http.Resilience;
using OpenAI.Chat;
using Polly.CircuitBreaker;
using Polly.PriorityRouting.SdkTests.Support;
using Polly.RateLimiting;
using Polly.Retry;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// The code of docs/recipes.md, run against fake services: each snippet there is copied from a test here, with the
/// loopback addresses and test keys replaced by real-looking ones.
/// </summary>
public sealed class RecipesTests : FakeBackendsTestBase
{
    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Fact]
    public async Task Ptu_first_then_pay_as_you_go()
    {
        var unavailable = new List<string>();
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            {
                new PriorityBackend { Name = "ptu", BaseAddress = A.Address, Priority = 1, Headers = { ["api-key"] = "ptu-key" } },
                new PriorityBackend { Name = "paygo", BaseAddress = B.Address, Priority = 2, Headers = { ["api-key"] = "paygo-key" } },
            },
            StateStore = new InMemoryBackendStateStore(),
            OnBackendUnavailable = args =>
            {
                unavailable.Add($"{args.BackendName} {args.Reason} {Math.Round(args.Cooldown.TotalSeconds)}s");
                return default;
            },
        };
        // From its first request: the cooldown A announces is then 30 s to the millisecond, however slow the set-up.
        A.ThrottleFromNextRequestFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(options);
        var chat = AzureOpenAISdkTests.CreateChatClient(host);

        ChatCompletion first = await chat.CompleteChatAsync(Messages);
        ChatCompletion second = await chat.CompleteChatAsync(Messages);

        (first.Content.Single().Text, second.Content.Single().Text).Should().Be(("Hello from b.", "Hello from b."));
        (A.Hits, B.Hits).Should().Be((1, 2));
        unavailable.Should().Equal("ptu Throttled 30s");
        A.Received.Single().Request.Headers["api-key"].Should().Be("ptu-key");
        B.Served.Should().OnlyContain(r => r.Headers["api-key"] == "paygo-key");
    }

    [Fact]
    public async Task Multi_region_tiers_with_weights()
    {
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            {
                new PriorityBackend { Name = "ptu-eastus", BaseAddress = A.Address, Priority = 1 },
                new PriorityBackend { Name = "paygo-eastus2", BaseAddress = B.Address, Priority = 2, Weight = 3 },
                new PriorityBackend { Name = "paygo-swedencentral", BaseAddress = C.Address, Priority = 2, Weight = 1 },
            },
        };
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(DrawsInTurn.Apply(options));
        var chat = OpenAISdkTests.CreateChatClient(host);

        for (var i = 0; i < 60; i++)
        {
            ChatCompletion completion = await chat.CompleteChatAsync(Messages);
            completion.Content.Single().Text.Should().BeOneOf("Hello from b.", "Hello from c.");
        }

        A.Hits.Should().Be(1, "the throttled PTU is remembered after its first 429");
        (B.Hits, C.Hits).Should().Be((45, 15), "3:1 weights, drawn in turn");
    }

    [Fact]
    public async Task Azure_API_Management_in_front_keeps_the_gateway_base_path()
    {
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            {
                new PriorityBackend { Name = "apim-east", BaseAddress = new Uri(A.Address, "aoai-east/"), Priority = 1, Headers = { ["api-key"] = "apim-subscription-key" } },
                new PriorityBackend { Name = "apim-west", BaseAddress = new Uri(B.Address, "aoai-west/"), Priority = 2, Headers = { ["api-key"] = "apim-subscription-key" } },
            },
        };
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(options);
        var chat = AzureOpenAISdkTests.CreateChatClient(host);

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        completion.Content.Single().Text.Should().Be("Hello from b.");
        A.Received.Single().Request.Path.Should().Be("/aoai-east/openai/deployments/gpt-4o-prod/chat/completions");
        B.Received.Single().Request.Path.Should().Be("/aoai-west/openai/deployments/gpt-4o-prod/chat/completions");
        B.Received.Single().Request.Query.Should().Be("?api-version=2024-10-21");
    }

    [Fact]
    public async Task A_rate_limiter_outside_the_retry_and_a_circuit_breaker_between_retry_and_routing()
    {
        var options = SdkClientHost.Route((A, 1, null, null), (B, 2, null, null));
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.Latency = TimeSpan.FromMilliseconds(500);
        using var host = new SdkClientHost(options, pipeline: b => b
            .AddConcurrencyLimiter(permitLimit: 1, queueLimit: 0)                     // 1. the app's own budget
            .AddRetry(new HttpRetryStrategyOptions { ShouldRetryAfterHeader = true }) // 2. waits for the exhausted answer
            .AddCircuitBreaker(GroupCircuitBreaker())                                 // 3. sees only whole-group outcomes
            .AddPriorityRouting(options)                                              // 4. picks a backend per attempt
            .AddTimeout(TimeSpan.FromSeconds(30)));                                   // 5. one attempt
        var chat = OpenAISdkTests.CreateChatClient(host);

        var first = chat.CompleteChatAsync(Messages);
        await WaitUntilAsync(() => B.Hits == 1);
        var second = () => chat.CompleteChatAsync(Messages);

        await second.Should().ThrowAsync<RateLimiterRejectedException>("the only permit is held by the first call");
        ChatCompletion completion = await first;
        completion.Content.Single().Text.Should().Be("Hello from b.");
        (A.Hits, B.Hits).Should().Be((1, 1));
    }

    [Fact]
    public async Task The_circuit_breaker_between_retry_and_routing_opens_only_when_every_backend_is_exhausted()
    {
        var options = SdkClientHost.Route((A, 1, null, null), (B, 2, null, null));
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        // No outer retry here, to keep the test fast: a retry would first wait for each exhausted answer's Retry-After.
        using var host = new SdkClientHost(options, pipeline: b => b
            .AddCircuitBreaker(GroupCircuitBreaker())
            .AddPriorityRouting(options)
            .AddTimeout(TimeSpan.FromSeconds(30)));
        var chat = OpenAISdkTests.CreateChatClient(host, sdkRetries: 0);

        // A's 429s are absorbed by the routing: the breaker sees two successes.
        await chat.CompleteChatAsync(Messages);
        await chat.CompleteChatAsync(Messages);
        B.ThrottleFor(TimeSpan.FromSeconds(30));

        // Now the whole group is throttled: two exhausted answers, 2 failures of 4 calls, and the breaker opens.
        var call = () => chat.CompleteChatAsync(Messages);
        (await call.Should().ThrowAsync<ClientResultException>()).Which.Status.Should().Be(429);
        (await call.Should().ThrowAsync<ClientResultException>()).Which.Status.Should().Be(429);
        await call.Should().ThrowAsync<BrokenCircuitException>();
        var openCircuit = new RetryPredicateArguments<HttpResponseMessage>(
            ResilienceContextPool.Shared.Get(), Outcome.FromException<HttpResponseMessage>(new BrokenCircuitException()), attemptNumber: 0);
        (await new HttpRetryStrategyOptions().ShouldHandle(openCircuit))
            .Should().BeFalse("the default outer retry lets an open circuit fail fast");
        (A.Hits, B.Hits).Should().Be((1, 3), "the second exhausted answer came from the store, without a backend call");
    }

    /// <summary>One breaker for the whole group, between the outer retry and the routing.</summary>
    private static HttpCircuitBreakerStrategyOptions GroupCircuitBreaker() => new()
    {
        FailureRatio = 0.5,
        MinimumThroughput = 4,
        SamplingDuration = TimeSpan.FromSeconds(30),
        BreakDuration = TimeSpan.FromSeconds(5),
    };

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline);
            await Task.Delay(10);
        }
    }
}
