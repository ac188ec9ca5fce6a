using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>
/// A transport that returns one response object again and again (a cache, a stub): the wrappers the observers put
/// around its body — body watching, then affinity's sniffing of the id it creates — are put on once, not one level
/// deeper per request.
/// </summary>
public class CachedAnswerTests
{
    [Fact]
    public async Task A_transport_that_returns_the_same_creating_answer_again_is_not_wrapped_again_when_affinity_sniffs_it()
    {
        var pins = new InMemoryAffinityStore();
        using var h = new RoutingHarness(o => o.Affinity.Store = pins, RoutingHarness.Backend("a", 1));
        var cached = new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StringContent("""{"id":"resp_a1","object":"response","status":"completed"}""", Encoding.UTF8, "application/json"),
        };
        h.Transport.Respond("a", _ => cached);

        // The contents as each request left them: the response object is the same one every time.
        var first = (await Create(h)).Content;
        (await first.ReadAsStringAsync()).Should().Contain("resp_a1");
        var second = (await Create(h)).Content;
        var third = (await Create(h)).Content;

        second.Should().BeSameAs(first, "the answer is wrapped once, not one wrapper deeper per request");
        third.Should().BeSameAs(first);
        (await third.ReadAsStringAsync()).Should().Be("""{"id":"resp_a1","object":"response","status":"completed"}""");
        (await pins.FindAsync("resp_a1", CancellationToken.None)).Should().Be(RoutingHarness.Key("a").Backend);
    }

    [Fact]
    public async Task A_transport_that_returns_the_same_large_400_again_is_not_read_ahead_and_wrapped_again_with_context_window_fallbacks()
    {
        var small = RoutingHarness.Backend("a", 1);
        small.Models["gpt-4o-8k"] = "small";
        var large = RoutingHarness.Backend("c", 2);
        large.Models["gpt-4o-128k"] = "large";
        using var h = new RoutingHarness(o => o.ContextWindowFallbacks["gpt-4o-8k"] = ["gpt-4o-128k"], small, large);

        // Longer than an error body is read ahead, and of no known length: the first answer is read ahead and put back.
        var error = "{\"error\":{\"code\":\"invalid_value\",\"message\":\"" + new string('x', ContextLengthError.MaxReadBytes) + "\"}}";
        var cached = new HttpResponseMessage(HttpStatusCode.BadRequest) { Content = new StreamContent(new ScriptedBodyStream().Send(error).End()) };
        h.Transport.Respond("a", _ => cached);

        // Callers that do not read the error: each request would otherwise read 16 KB ahead again and wrap it once more.
        var first = (await Chat(h)).Content;
        var second = (await Chat(h)).Content;
        var third = (await Chat(h)).Content;

        second.Should().BeSameAs(first, "an answer that went back once is not read ahead and wrapped again");
        third.Should().BeSameAs(first);
        (await third.ReadAsStringAsync()).Should().Be(error);
        h.Transport.Hosts.Should().Equal("a", "a", "a");
    }

    private static Task<HttpResponseMessage> Chat(RoutingHarness h)
        => h.Client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent("""{"model":"gpt-4o-8k","messages":[]}""", Encoding.UTF8, "application/json") },
            HttpCompletionOption.ResponseHeadersRead);

    private static Task<HttpResponseMessage> Create(RoutingHarness h)
        => h.Client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/openai/v1/responses") { Content = new StringContent("""{"model":"gpt-4o","input":"hi"}""", Encoding.UTF8, "application/json") },
            HttpCompletionOption.ResponseHeadersRead);
}
