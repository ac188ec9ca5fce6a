using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// Creates that make a parent on the way (<c>POST /threads/runs</c>: a thread and a run in it) or a child under a pinned
/// parent (<c>POST /threads/{id}/runs</c>), through the one-line handler over three stateful backends.
/// </summary>
public sealed class AffinityNestedCreatesTests : StatefulBackendsTest
{
    [Theory]
    [InlineData("https://placeholder/v1/threads", "")]
    [InlineData("https://placeholder/openai/threads", "?api-version=2024-05-01-preview")]
    public async Task The_thread_that_create_thread_and_run_makes_routes_every_later_request_to_its_backend(string threads, string query)
    {
        using var host = new AffinityClientHost(Backends);

        using var created = await host.Client.PostAsync($"{threads}/runs{query}", Json("""{"assistant_id":"asst_unpinned"}"""));
        var run = await created.Content.ReadFromJsonAsync<JsonElement>();
        var threadId = run.GetProperty("thread_id").GetString()!;
        var origin = Backend(threadId);
        for (var i = 0; i < 10; i++)
        {
            using var read = await host.Client.GetAsync($"{threads}/{threadId}{query}");
            read.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        using var second = await host.Client.PostAsync($"{threads}/{threadId}/runs{query}", Json("""{"assistant_id":"asst_unpinned"}"""));
        var secondRun = (await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        using var polled = await host.Client.GetAsync($"{threads}/{threadId}/runs/{secondRun}{query}");

        polled.StatusCode.Should().Be(HttpStatusCode.OK);
        origin.Received.Select(r => r.Status).Should().Equal(Enumerable.Repeat(200, 13));
        Backends.Where(b => b != origin).Sum(b => b.Hits).Should().Be(0);
        host.Pins.TryFind(threadId, out _).Should().BeTrue();
        host.Pins.TryFind(run.GetProperty("id").GetString()!, out _).Should().BeTrue("the run is pinned with its thread");
        host.Pins.TryFind(secondRun, out _).Should().BeTrue("a run created in a pinned thread is pinned too");
    }

    [Fact]
    public async Task A_streamed_create_thread_and_run_pins_the_thread_from_its_first_event()
    {
        using var host = new AffinityClientHost(Backends);

        using var request = new HttpRequestMessage(HttpMethod.Post, "https://placeholder/v1/threads/runs") { Content = Json("""{"assistant_id":"asst_x","stream":true}""") };
        using var streamed = await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await streamed.Content.ReadAsStringAsync();
        var firstData = body.Split('\n').First(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
        var threadId = JsonDocument.Parse(firstData).RootElement.GetProperty("id").GetString()!;
        var origin = Backend(threadId);
        for (var i = 0; i < 10; i++)
        {
            using var read = await host.Client.GetAsync($"https://placeholder/v1/threads/{threadId}");
            read.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        origin.Hits.Should().Be(11);
        Backends.Sum(b => b.NotFound).Should().Be(0);
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private FakeStatefulOpenAIBackend Backend(string id) => Backends.Single(b => b.Holds(id));
}
