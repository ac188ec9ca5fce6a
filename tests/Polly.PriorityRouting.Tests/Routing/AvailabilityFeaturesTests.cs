using System.Net;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>Outlier ejection, proactive throttling and throttle partitions, through the strategy.</summary>
public class AvailabilityFeaturesTests
{
    [Fact]
    public async Task Five_server_errors_in_a_row_eject_the_backend_and_one_probe_brings_it_back()
    {
        using var h = Harness(o => o.DefaultCooldown = TimeSpan.FromSeconds(1));
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);

        for (var i = 0; i < 5; i++)
        {
            (await h.Client.GetAsync("/")).Dispose();
            h.StateOf("a")!.Value.Reason.Should().Be(i < 4 ? BackendUnavailableReason.ServerError : BackendUnavailableReason.Ejected);
            h.Time.Advance(TimeSpan.FromSeconds(1));
        }

        var ejectedAt = h.Time.GetUtcNow() - TimeSpan.FromSeconds(1);
        h.StateOf("a")!.Value.Until.Should().Be(ejectedAt + TimeSpan.FromSeconds(30));
        h.Transport.CountFor("a").Should().Be(5);

        h.Time.Advance(TimeSpan.FromSeconds(27.5));
        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.CountFor("a").Should().Be(5, "still ejected");

        h.Time.Advance(TimeSpan.FromSeconds(1.5));
        h.Transport.Respond("a", HttpStatusCode.OK);
        (await h.Client.GetAsync("/")).Dispose();
        (await h.Client.GetAsync("/")).Dispose();
        h.Transport.CountFor("a").Should().Be(7, "the probe succeeded and traffic returned");
    }

    [Fact]
    public async Task While_the_probe_is_in_flight_other_requests_go_elsewhere()
    {
        using var h = Harness(o => o.OutlierEjection.ConsecutiveFailures = 1);
        h.Transport.Respond("a", HttpStatusCode.BadGateway);
        (await h.Client.GetAsync("/")).Dispose();
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Ejected);
        h.Time.Advance(TimeSpan.FromSeconds(30));

        var probeArrived = new TaskCompletionSource();
        var releaseProbe = new TaskCompletionSource();
        h.Transport.Respond("a", _ =>
        {
            probeArrived.TrySetResult();
            releaseProbe.Task.Wait(TimeSpan.FromSeconds(10));
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("a") };
        });
        var probe = Task.Run(() => h.Client.GetAsync("/"));
        await probeArrived.Task.WaitAsync(TimeSpan.FromSeconds(10));

        using var other = await h.Client.GetAsync("/");
        (await other.Content.ReadAsStringAsync()).Should().Be("b");

        releaseProbe.SetResult();
        using var probed = await probe;
        (await probed.Content.ReadAsStringAsync()).Should().Be("a");
        using var after = await h.Client.GetAsync("/");
        (await after.Content.ReadAsStringAsync()).Should().Be("a");
    }

    [Fact]
    public async Task A_predicate_that_throws_on_the_probe_does_not_keep_the_probe_slot()
    {
        var throwOnce = false;
        using var h = Harness(o =>
        {
            o.OutlierEjection.ConsecutiveFailures = 1;
            o.ShouldHandle = args => throwOnce && args.BackendName == "a"
                ? throw new InvalidOperationException("predicate bug")
                : new ValueTask<bool>(args.Outcome.Result?.StatusCode >= HttpStatusCode.InternalServerError);
        });
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);
        (await h.Client.GetAsync("/")).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(30));
        h.Transport.Respond("a", HttpStatusCode.OK);
        throwOnce = true;

        var act = () => h.Client.GetAsync("/");
        await act.Should().ThrowAsync<InvalidOperationException>();
        throwOnce = false;
        using var response = await h.Client.GetAsync("/");

        (await response.Content.ReadAsStringAsync()).Should().Be("a", "the next request may probe a again");
    }

    [Fact]
    public async Task A_failed_probe_doubles_the_ejection()
    {
        using var h = Harness(o => o.OutlierEjection.ConsecutiveFailures = 1);
        h.Transport.Throw("a", new HttpRequestException("refused"));
        (await h.Client.GetAsync("/")).Dispose();
        h.Time.Advance(TimeSpan.FromSeconds(30));

        (await h.Client.GetAsync("/")).Dispose();

        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(60), BackendUnavailableReason.Ejected));
    }

    [Fact]
    public async Task Throttling_is_not_an_outlier_failure()
    {
        using var h = Harness(o => o.OutlierEjection.ConsecutiveFailures = 2);
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "1"));

        for (var i = 0; i < 4; i++)
        {
            (await h.Client.GetAsync("/")).Dispose();
            h.Time.Advance(TimeSpan.FromSeconds(1));
        }

        h.Transport.CountFor("a").Should().Be(4);
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.Throttled);
    }

    [Fact]
    public async Task Ejection_can_be_turned_off()
    {
        using var h = Harness(o =>
        {
            o.OutlierEjection.Enabled = false;
            o.OutlierEjection.ConsecutiveFailures = 1;
        });
        h.Transport.Respond("a", HttpStatusCode.InternalServerError);

        (await h.Client.GetAsync("/")).Dispose();

        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.ServerError);
    }

    [Theory]
    [InlineData("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "2s", 2_000)]
    [InlineData("x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "1m30s", 90_000)]
    [InlineData("x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "6m0s", 300_000)]
    public async Task A_spent_budget_takes_the_backend_out_before_it_answers_429(
        string remainingHeader, string remaining, string resetHeader, string reset, double expectedMilliseconds)
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.OK, (remainingHeader, remaining), (resetHeader, reset));

        using var first = await h.Client.GetAsync("/");
        using var second = await h.Client.GetAsync("/");

        first.StatusCode.Should().Be(HttpStatusCode.OK);
        (await first.Content.ReadAsStringAsync()).Should().Be("a", "the caller gets the answer untouched");
        (await second.Content.ReadAsStringAsync()).Should().Be("b");
        h.StateOf("a").Should().Be(new BackendUnavailability(
            h.Time.GetUtcNow().AddMilliseconds(expectedMilliseconds), BackendUnavailableReason.Throttled));
    }

    [Theory]
    [InlineData("x-ratelimit-remaining-requests", "3", "x-ratelimit-reset-requests", "2s")]
    [InlineData("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "soon")]
    [InlineData("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-tokens", "2s")]
    public async Task Budgets_that_are_not_spent_or_without_a_reset_change_nothing(
        string remainingHeader, string remaining, string resetHeader, string reset)
    {
        using var h = Harness();
        h.Transport.Respond("a", HttpStatusCode.OK, (remainingHeader, remaining), (resetHeader, reset));

        (await h.Client.GetAsync("/")).Dispose();

        h.Store.Count.Should().Be(0);
    }

    [Fact]
    public async Task Proactive_throttling_can_be_turned_off()
    {
        using var h = Harness(o => o.ProactiveThrottling = false);
        h.Transport.Respond("a", HttpStatusCode.OK, ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "2s"));

        (await h.Client.GetAsync("/")).Dispose();

        h.Store.Count.Should().Be(0);
    }

    [Fact]
    public async Task A_429_for_one_deployment_leaves_other_deployments_on_the_backend_alone()
    {
        using var h = Harness(o => o.ThrottlePartitionKey = ThrottlePartitions.AzureOpenAIDeployment);
        h.Transport.Respond("a", request => request.RequestUri!.AbsolutePath.Contains("gpt-4o", StringComparison.Ordinal)
            ? new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { { "Retry-After", "20" } } }
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("a") });

        (await h.Client.GetAsync("/openai/deployments/gpt-4o/chat/completions")).Dispose();
        using var otherDeployment = await h.Client.GetAsync("/openai/deployments/gpt-35/chat/completions");
        using var sameDeployment = await h.Client.GetAsync("/openai/deployments/gpt-4o/chat/completions");

        (await otherDeployment.Content.ReadAsStringAsync()).Should().Be("a");
        (await sameDeployment.Content.ReadAsStringAsync()).Should().Be("b");
        h.StateOf("a", "gpt-4o").Should().Be(new BackendUnavailability(h.Time.GetUtcNow().AddSeconds(20), BackendUnavailableReason.Throttled));
        h.StateOf("a").Should().BeNull();
    }

    [Fact]
    public async Task Server_errors_take_every_partition_of_the_backend_out()
    {
        using var h = Harness(o => o.ThrottlePartitionKey = ThrottlePartitions.AzureOpenAIDeployment);
        h.Transport.Respond("a", HttpStatusCode.ServiceUnavailable);

        (await h.Client.GetAsync("/openai/deployments/gpt-4o/chat/completions")).Dispose();
        h.Transport.Respond("a", HttpStatusCode.OK);
        using var other = await h.Client.GetAsync("/openai/deployments/gpt-35/chat/completions");

        (await other.Content.ReadAsStringAsync()).Should().Be("b");
        h.StateOf("a")!.Value.Reason.Should().Be(BackendUnavailableReason.ServerError);
    }

    [Fact]
    public async Task The_exhausted_answer_is_computed_for_the_request_partition()
    {
        using var h = Harness(
            o => o.ThrottlePartitionKey = ThrottlePartitions.AzureOpenAIDeployment,
            RoutingHarness.Backend("a", 1), RoutingHarness.Backend("b", 2));
        h.Transport.Respond("a", HttpStatusCode.TooManyRequests, ("Retry-After", "20")).Respond("b", HttpStatusCode.TooManyRequests, ("Retry-After", "7"));

        using var exhausted = await h.Client.GetAsync("/openai/deployments/gpt-4o/chat/completions");
        h.Transport.Respond("a", HttpStatusCode.OK);
        using var other = await h.Client.GetAsync("/openai/deployments/gpt-35/chat/completions");

        exhausted.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        exhausted.Headers.GetValues("retry-after-ms").Should().Equal("7002");
        other.StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Theory]
    [InlineData("http://placeholder/openai/deployments/gpt-4o/chat/completions?api-version=1", "gpt-4o")]
    [InlineData("http://placeholder/team-a/openai/deployments/My%20Model/embeddings", "My Model")]
    [InlineData("http://placeholder/OpenAI/Deployments/x", "x")]
    [InlineData("http://placeholder/openai/deployments/", null)]
    [InlineData("http://placeholder/v1/chat/completions", null)]
    public void The_azure_openai_partition_is_the_deployment_name(string uri, string? expected)
        => ThrottlePartitions.AzureOpenAIDeployment(new HttpRequestMessage(HttpMethod.Post, uri)).Should().Be(expected);

    private static RoutingHarness Harness(Action<PriorityRoutingStrategyOptions>? configure = null, params PriorityBackend[] backends)
        => new(o =>
        {
            o.Randomizer = _ => 0;
            configure?.Invoke(o);
        }, backends);
}
