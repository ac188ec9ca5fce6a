using System.Net;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>A custom <see cref="AffinityIdExtractor"/> through the strategy, and how its answers are used.</summary>
public class AffinityIdExtractorTests
{
    private static readonly AffinityIdKind Ticket = new("ticket", TimeSpan.FromMinutes(5));

    private readonly List<string> _bodiesSeen = [];
    private readonly FakeTimeProvider _clock = new();
    private int _draws;

    [Fact]
    public async Task A_custom_kind_is_pinned_for_its_own_lifetime()
    {
        var (h, pins) = Harness();
        using var routing = h;
        h.Transport.Respond("b", _ => Answer("""{"ticket":"tk-1"}"""));
        _draws = 1;
        using (await h.Client.PostAsync("/tickets", null))
        {
        }

        pins.TryFind("tk-1", out var holder).Should().BeTrue();
        holder.Should().Be("b@http://b");

        _clock.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        pins.TryFind("tk-1", out _).Should().BeTrue();
        _clock.Advance(TimeSpan.FromSeconds(1));
        pins.TryFind("tk-1", out _).Should().BeFalse("a ticket is pinned for the five minutes of its kind");
    }

    [Fact]
    public async Task A_referenced_id_of_a_custom_kind_routes_to_its_backend_and_names_its_kind_when_that_backend_is_gone()
    {
        var (h, pins) = Harness();
        using var routing = h;
        pins.Pin("tk-2", "c@http://c", TimeSpan.FromMinutes(1));
        pins.Pin("tk-gone", "old@http://old", TimeSpan.FromMinutes(1));

        using var routed = await h.Client.GetAsync("/tickets/tk-2");
        using var gone = await h.Client.GetAsync("/tickets/tk-gone");

        h.Transport.Hosts.Should().Equal(["c"]);
        gone.StatusCode.Should().Be(HttpStatusCode.NotFound);
        using var error = System.Text.Json.JsonDocument.Parse(await gone.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetProperty("message").GetString().Should().StartWith("The ticket 'tk-gone' was created on backend 'old@http://old',");
    }

    [Fact]
    public async Task The_body_is_handed_to_the_extractor_only_when_it_asks_for_it()
    {
        var (h, _) = Harness();
        using var routing = h;

        using (await h.Client.PostAsync("/tickets/search", Json("""{"ticket":"tk-3"}""")))
        {
        }

        using (await h.Client.PostAsync("/other", Json("""{"ticket":"tk-4"}""")))
        {
        }

        _bodiesSeen.Should().Equal("""{"ticket":"tk-3"}""");
    }

    [Fact]
    public async Task An_id_the_extractor_returns_that_cannot_be_kept_routes_normally()
    {
        var (h, pins) = Harness();
        using var routing = h;
        pins.Pin("tk-5", "c@http://c", TimeSpan.FromMinutes(1));

        using (await h.Client.GetAsync("/tickets/tk%205"))
        {
        }

        h.Transport.Hosts.Should().Equal(["a"], "an id with a space is ignored, whatever the extractor said");
    }

    [Fact]
    public async Task The_created_id_can_come_from_a_header()
    {
        var (h, pins) = Harness();
        using var routing = h;
        h.Transport.Respond("a", _ =>
        {
            var answer = Answer("{}");
            answer.Headers.Add("x-ticket", "tk-6");
            return answer;
        });

        using (await h.Client.PostAsync("/tickets?from=header", null))
        {
        }

        pins.TryFind("tk-6", out var holder).Should().BeTrue();
        holder.Should().Be("a@http://a");
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static HttpResponseMessage Answer(string json) => new(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    private (RoutingHarness Harness, InMemoryAffinityStore Pins) Harness()
    {
        var pins = new InMemoryAffinityStore(100, _clock);
        var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = bound => _draws++ % bound;
                o.Affinity.IdExtractor = new TicketsExtractor(_bodiesSeen);
                o.Affinity.Store = pins;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1),
            RoutingHarness.Backend("c", 1));
        return (h, pins);
    }

    /// <summary>
    /// <c>POST /tickets</c> creates a ticket (its id in the answer's <c>"ticket"</c>, or with <c>?from=header</c> in
    /// <c>x-ticket</c>); <c>/tickets/{id}</c> refers to one; <c>POST /tickets/search</c> names one in its body.
    /// </summary>
    private sealed class TicketsExtractor(List<string> bodiesSeen) : AffinityIdExtractor
    {
        public override AffinityRequest Extract(HttpRequestMessage request)
        {
            var path = request.RequestUri!.AbsolutePath;
            return path switch
            {
                "/tickets" => new AffinityRequest { Creates = Ticket, CreatedIdProperty = "ticket" },
                "/tickets/search" => new AffinityRequest { ReadsBody = true },
                _ when path.StartsWith("/tickets/", StringComparison.Ordinal) =>
                    new AffinityRequest { Referenced = new AffinityId(Uri.UnescapeDataString(path["/tickets/".Length..]), Ticket) },
                _ => default,
            };
        }

        public override AffinityRequest ExtractFromBody(HttpRequestMessage request, ReadOnlySpan<byte> body, AffinityRequest fromRequest)
        {
            bodiesSeen.Add(Encoding.UTF8.GetString(body));
            return fromRequest;
        }

        public override string? ReadCreatedId(HttpResponseMessage response, AffinityRequest request)
            => request.Creates == Ticket && response.RequestMessage?.RequestUri?.Query == "?from=header" && response.Headers.TryGetValues("x-ticket", out var values)
                ? values.Single()
                : null;
    }
}
