using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OpenAI.Responses;
using Polly.PriorityRouting.SdkTests.Support;

#pragma warning disable OPENAI001 // The Responses client is an evaluation API of the OpenAI SDK.

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// A custom <see cref="AffinityIdExtractor"/> for an API of one's own (a sessions API), through the one-line handler,
/// over three equal-weight backends that each keep their own sessions and answer 404 for the others'.
/// </summary>
public sealed class CustomAffinityIdExtractorTests : StatefulBackendsTest
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_session_created_by_a_custom_api_keeps_every_later_request_on_its_backend_until_deleted(bool fromLocation)
    {
        using var host = AffinityClientHost.WithAffinity(a => a.IdExtractor = new SessionsIdExtractor(fromLocation), Backends);

        using var created = await host.Client.PostAsync("https://placeholder/api/sessions", null);
        created.StatusCode.Should().Be(HttpStatusCode.Created);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sessionId").GetString()!;
        var origin = Backend(id);
        for (var i = 1; i <= 20; i++)
        {
            using var message = await host.Client.PostAsync($"https://placeholder/api/sessions/{id}/messages", null);
            message.StatusCode.Should().Be(HttpStatusCode.OK);
            (await message.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("messages").GetInt32().Should().Be(i);
        }

        host.Pins.Count.Should().Be(1, "the session alone was pinned");
        host.Pins.TryFind(id, out _).Should().BeTrue();
        using var deleted = await host.Client.DeleteAsync($"https://placeholder/api/sessions/{id}");

        deleted.StatusCode.Should().Be(HttpStatusCode.NoContent);
        host.Pins.TryFind(id, out _).Should().BeFalse("a successful DELETE forgets the session");
        origin.Received.Select(r => r.Status).Should().Equal([201, .. Enumerable.Repeat(200, 20), 204]);
        Backends.Where(b => b != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_custom_extractor_that_delegates_keeps_the_openai_shapes()
    {
        using var host = AffinityClientHost.WithAffinity(a => a.IdExtractor = new SessionsIdExtractor(fromLocation: false), Backends);
        var responses = host.OpenAI().GetResponsesClient();

        ResponseResult first = await responses.CreateResponseAsync("gpt-4o", "Hello.", previousResponseId: null);
        var previous = first.Id;
        for (var i = 0; i < 10; i++)
        {
            ResponseResult next = await responses.CreateResponseAsync("gpt-4o", "More.", previous);
            previous = next.Id;
        }

        var origin = Backend(first.Id);
        origin.Hits.Should().Be(11);
        Backends.Sum(b => b.NotFound).Should().Be(0);
    }

    [Fact]
    public async Task A_custom_extractor_that_throws_routes_the_request_normally()
    {
        using var host = AffinityClientHost.WithAffinity(a => a.IdExtractor = new ThrowingExtractor(), Backends);

        using var response = await host.Client.PostAsync("https://placeholder/api/sessions", null);

        response.StatusCode.Should().Be(HttpStatusCode.Created);
        host.Pins.Count.Should().Be(0);
    }

    /// <summary>The backend that created an id: ids end in the backend's name and a sequence number.</summary>
    private FakeStatefulOpenAIBackend Backend(string id) => Backends.Single(b => b.Holds(id));

    private sealed class ThrowingExtractor : AffinityIdExtractor
    {
        public override AffinityRequest Extract(HttpRequestMessage request) => throw new InvalidOperationException("A bug in an extractor.");
    }
}
