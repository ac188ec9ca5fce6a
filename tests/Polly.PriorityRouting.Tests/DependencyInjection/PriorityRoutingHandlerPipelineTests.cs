using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.DependencyInjection;

public class PriorityRoutingHandlerPipelineTests
{
    [Fact]
    public async Task A_total_timeout_switched_off_by_its_generator_still_lets_the_retry_wait_for_the_exhausted_answer()
    {
        // Defect: StampDeadline (PriorityRoutingHandlerPipeline.cs:41) stamps now + InfiniteTimeSpan (= now - 1 ms) as the
        // deadline when the generator disables the timeout, so CapByDeadline never retries an exhausted answer.
        var calls = 0;
        var transport = new RecordingHandler().Respond("a.example", _ => Interlocked.Increment(ref calls) == 1
            ? Throttled("0")
            : new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("ok") });
        var services = new ServiceCollection();
        services.AddHttpClient("aoai").ConfigurePrimaryHttpMessageHandler(() => transport).AddPriorityRoutingHandler(o =>
        {
            o.Routing.StateStore = new InMemoryBackendStateStore();
            o.Routing.Backends.Add(new PriorityBackend { Name = "a", BaseAddress = new Uri("https://a.example/") });

            // Polly's documented way to switch a timeout off for some requests (long streamed completions).
            o.TotalRequestTimeout.TimeoutGenerator = _ => new ValueTask<TimeSpan>(System.Threading.Timeout.InfiniteTimeSpan);
        });
        using var provider = services.BuildServiceProvider();

        using var response = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("aoai").GetAsync("http://placeholder/");

        response.StatusCode.Should().Be(HttpStatusCode.OK, "the exhausted 429 said 'retry after 0 s' and no timeout applies");
        transport.Hosts.Should().Equal("a.example", "a.example");
    }

    private static HttpResponseMessage Throttled(string retryAfter)
    {
        var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Content = new StringContent("throttled") };
        response.Headers.TryAddWithoutValidation("Retry-After", retryAfter);
        return response;
    }
}
