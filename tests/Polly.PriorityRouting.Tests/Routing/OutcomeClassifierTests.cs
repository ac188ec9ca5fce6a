using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>
/// What a handled answer means for its backend. The rule for a server error that says when to come back (a 503 with
/// <c>Retry-After</c>): the service is asking for time for what it was asked — an overloaded deployment, as Azure
/// OpenAI answers — so it is a throttle of the deployment (partition) for the time asked; a server error without such a
/// header takes the whole backend out and counts toward ejection.
/// </summary>
public sealed class OutcomeClassifierTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan DefaultCooldown = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxCooldown = TimeSpan.FromMinutes(5);

    public static TheoryData<int, string?, string?, BackendUnavailableReason, double> Answers => new()
    {
        { 429, null, null, BackendUnavailableReason.Throttled, 10 },
        { 429, "Retry-After", "7", BackendUnavailableReason.Throttled, 7 },
        { 503, "Retry-After", "7", BackendUnavailableReason.Throttled, 7 },
        { 503, "retry-after-ms", "1500", BackendUnavailableReason.Throttled, 1.5 },
        { 500, "x-ms-retry-after-ms", "2000", BackendUnavailableReason.Throttled, 2 },
        { 503, null, null, BackendUnavailableReason.ServerError, 10 },
        { 503, "x-ratelimit-reset-requests", "6s", BackendUnavailableReason.ServerError, 10 },
        { 502, "Retry-After", "not a number", BackendUnavailableReason.ServerError, 10 },
        { 408, null, null, BackendUnavailableReason.Timeout, 10 },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public void A_server_error_is_a_throttle_only_when_it_says_when_to_come_back(int status, string? header, string? value, BackendUnavailableReason reason, double seconds)
    {
        using var response = new HttpResponseMessage((HttpStatusCode)status);
        if (header is not null)
        {
            response.Headers.TryAddWithoutValidation(header, value);
        }

        var (classified, cooldown) = OutcomeClassifier.Classify(Outcome.FromResult(response), Now, DefaultCooldown, MaxCooldown);

        classified.Should().Be(reason);
        cooldown.Should().Be(TimeSpan.FromSeconds(seconds));
        OutcomeClassifier.IsBackendFailure(classified).Should().Be(reason != BackendUnavailableReason.Throttled, "only a failure of the backend itself counts toward ejection");
    }

    [Fact]
    public async Task A_503_with_Retry_After_holds_out_only_the_deployment_it_was_sent_to_for_the_time_asked()
    {
        using var h = TwoModelsOnA();
        h.Transport.Respond("a", request => Answer(request, "gpt-4o-ptu", HttpStatusCode.ServiceUnavailable, ("Retry-After", "30")));

        (await Chat(h, "gpt-4o")).Should().Be("b");
        (await Chat(h, "o3")).Should().Be("a", "the other deployment of a is not overloaded");

        h.StateOf("a").Should().BeNull("the backend as a whole stays in rotation");
        h.StateOf("a", "gpt-4o-ptu").Should().Be(new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), BackendUnavailableReason.Throttled));
    }

    [Fact]
    public async Task A_503_without_Retry_After_takes_the_whole_backend_out_for_the_default_cooldown()
    {
        using var h = TwoModelsOnA();
        h.Transport.Respond("a", request => Answer(request, "gpt-4o-ptu", HttpStatusCode.ServiceUnavailable));

        (await Chat(h, "gpt-4o")).Should().Be("b");
        (await Chat(h, "o3")).Should().Be("b", "a server error that names no recovery time is the backend's");

        h.StateOf("a").Should().Be(new BackendUnavailability(h.Time.GetUtcNow() + TimeSpan.FromSeconds(10), BackendUnavailableReason.ServerError));
        h.Transport.Hosts.Should().Equal("a", "b", "b");
    }

    private static RoutingHarness TwoModelsOnA()
    {
        var a = RoutingHarness.Backend("a", 1);
        a.Models["gpt-4o"] = "gpt-4o-ptu";
        a.Models["o3"] = "o3";
        var b = RoutingHarness.Backend("b", 2);
        b.Models["gpt-4o"] = "gpt-4o";
        b.Models["o3"] = "o3";
        var h = new RoutingHarness(o => o.DefaultCooldown = TimeSpan.FromSeconds(10), a, b);
        h.Transport.Respond("b", HttpStatusCode.OK);
        return h;
    }

    /// <summary>Answers <paramref name="status"/> to requests for <paramref name="deployment"/>, 200 "a" to the others.</summary>
    private static HttpResponseMessage Answer(HttpRequestMessage request, string deployment, HttpStatusCode status, params (string Name, string Value)[] headers)
    {
        var body = request.Content!.ReadAsStringAsync().GetAwaiter().GetResult();
        var response = new HttpResponseMessage(body.Contains($"\"{deployment}\"", StringComparison.Ordinal) ? status : HttpStatusCode.OK) { Content = new StringContent("a") };
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response;
    }

    private static async Task<string> Chat(RoutingHarness h, string model)
    {
        using var response = await h.Client.PostAsync("/v1/chat/completions", new StringContent($"{{\"model\":\"{model}\"}}", Encoding.UTF8, "application/json"));
        return await response.Content.ReadAsStringAsync();
    }
}
