using System.Net;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>
/// What a request body pins, through the strategy, read as the backends' JSON parsers read it: three equal backends
/// that the draws rotate a, b, c, … unless affinity routes the request.
/// </summary>
public class AffinityRequestBodyTests
{
    private readonly InMemoryAffinityStore _pins = new(1_000, TimeProvider.System);
    private int _draws;

    [Fact]
    public async Task A_chat_completion_naming_an_uploaded_file_only_in_a_content_part_goes_to_the_files_backend()
    {
        using var h = Harness();
        _pins.Pin("file-abc", "b@http://b", TimeSpan.FromMinutes(5));
        const string Body = """
            {"model":"gpt-4o","messages":[{"role":"user","content":[
              {"type":"text","text":"Summarise the attached report."},
              {"type":"file","file":{"file_id":"file-abc"}}]}]}
            """;

        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.PostAsync("/v1/chat/completions", Json(Body));
            response.StatusCode.Should().Be(HttpStatusCode.OK);
        }

        h.Transport.Hosts.Should().Equal(["b", "b", "b"], "the file exists on b only, whether or not the body has a user or prompt_cache_key");
    }

    [Theory]
    [InlineData("""{"previous\u005fresponse_id":"resp_b-1","input":"more"}""")]
    [InlineData("""{"previous_response_id":"resp\u005fb-1","input":"more"}""")]
    [InlineData("""{"\u0070revious_response_id":"\u0072esp_b\u002d1","input":"more"}""")]
    public async Task A_previous_response_id_written_with_escapes_goes_to_the_backend_holding_it(string body)
    {
        using var h = Harness();
        _pins.Pin("resp_b-1", "b@http://b", TimeSpan.FromMinutes(5));

        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.PostAsync("/v1/responses", Json(body));
        }

        h.Transport.Hosts.Should().Equal(["b", "b", "b"]);
    }

    [Fact]
    public async Task With_a_duplicated_previous_response_id_the_last_one_routes_as_the_backend_reads_it()
    {
        using var h = Harness();
        _pins.Pin("resp_a-1", "a@http://a", TimeSpan.FromMinutes(5));
        _pins.Pin("resp_c-1", "c@http://c", TimeSpan.FromMinutes(5));

        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.PostAsync("/v1/responses", Json("""{"previous_response_id":"resp_a-1","input":"more","previous_response_id":"resp_c-1"}"""));
        }

        h.Transport.Hosts.Should().Equal(["c", "c", "c"]);
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","input":"hi","metadata":{"previous_response_id":"resp_a-1"}}""")]
    [InlineData("""{"model":"gpt-4o","input":[{"role":"user","content":"hi","previous_response_id":"resp_a-1"}]}""")]
    [InlineData("""{"model":"gpt-4o","text":{"format":{"type":"json_schema","schema":{"properties":{"x":{"previous_response_id":"resp_a-1"}}}}}}""")]
    public async Task A_previous_response_id_below_the_top_level_does_not_pin_a_new_response(string body)
    {
        using var h = Harness();
        _pins.Pin("resp_a-1", "a@http://a", TimeSpan.FromMinutes(5));
        _draws = 1;

        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.PostAsync("/v1/responses", Json(body));
        }

        h.Transport.Hosts.Should().Equal(["b", "c", "a"], "a new response chained to nothing spreads over the tier");
    }

    [Fact]
    public async Task A_file_id_in_metadata_pins_nothing()
    {
        using var h = Harness();
        _pins.Pin("file-abc", "a@http://a", TimeSpan.FromMinutes(5));
        _draws = 1;

        for (var i = 0; i < 3; i++)
        {
            using var response = await h.Client.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"metadata":{"file_id":"file-abc"}}"""));
        }

        h.Transport.Hosts.Should().Equal(["b", "c", "a"]);
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private RoutingHarness Harness()
    {
        var h = new RoutingHarness(
            o =>
            {
                o.Randomizer = bound => _draws++ % bound;
                o.Affinity.Store = _pins;
            },
            RoutingHarness.Backend("a", 1),
            RoutingHarness.Backend("b", 1),
            RoutingHarness.Backend("c", 1));
        foreach (var host in new[] { "a", "b", "c" })
        {
            h.Transport.Respond(host, _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}", Encoding.UTF8, "application/json") });
        }

        return h;
    }
}
