using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Routing;

public class RequestBodyTests
{
    [Theory]
    [InlineData("application/json", true)]
    [InlineData("Application/JSON", true)]
    [InlineData("text/json", true)]
    [InlineData("application/merge-patch+json", true)]
    [InlineData(null, true)]
    [InlineData("application/jsonl", false)]
    [InlineData("application/x-ndjson", false)]
    [InlineData("multipart/form-data", false)]
    [InlineData("application/x-www-form-urlencoded", false)]
    [InlineData("text/plain", false)]
    public void One_rule_says_what_is_json_for_the_model_the_cost_and_affinity(string? mediaType, bool json)
    {
        RequestBody.IsJson(mediaType is null ? null : new MediaTypeHeaderValue(mediaType)).Should().Be(json);

        using var request = Post("""{"model":"gpt-4o","prompt":"12345678","previous_response_id":"resp_1"}""", mediaType);
        var facts = RequestBody.Of(request, keepBytes: true)!.Facts;
        (facts.Model, OpenAIRequestCost.Estimate(request), (string?)facts.Referenced.Value).Should().Be(json ? ("gpt-4o", 2L, "resp_1") : (null, 0L, null));
    }

    [Fact]
    public void A_body_over_the_one_cap_is_not_read()
    {
        using var request = Post("""{"model":"gpt-4o","prompt":"12345678"}""");
        request.Content!.Headers.ContentLength = RequestBody.MaxBytes + 1L;

        RequestBody.Of(request)!.Facts.Should().BeSameAs(RequestBodyFacts.None);
    }

    [Fact]
    public void The_body_is_read_once_and_left_readable_where_it_was()
    {
        using var request = Post("""{"model":"gpt-4o","prompt":"12345678"}""");
        var stream = request.Content!.ReadAsStream();
        stream.Position = 3;

        var first = RequestBody.Of(request)!;
        var facts = first.Facts;

        RequestBody.Of(request).Should().BeSameAs(first, "an outer retry finds the read of the first execution");
        RequestBody.Of(request)!.Facts.Should().BeSameAs(facts);
        stream.Position.Should().Be(3);
    }

    [Fact]
    public void A_request_given_new_content_is_read_anew()
    {
        using var request = Post("""{"model":"first"}""");
        RequestBody.Of(request, keepBytes: true)!.Facts.Model.Should().Be("first");

        request.Content = new StringContent("""{"model":"second"}""", Encoding.UTF8, "application/json");

        RequestBody.Of(request, keepBytes: true)!.Facts.Model.Should().Be("second");
    }

    [Fact]
    public async Task An_outer_retry_hands_a_custom_extractor_the_same_buffer_and_reads_nothing_again()
    {
        var extractor = new AddressRecordingExtractor();
        using var h = new RoutingHarness(o => o.Affinity.IdExtractor = extractor, RoutingHarness.Backend("a", 1));
        using var invoker = new HttpMessageInvoker(new ResilienceHandler(h.Pipeline) { InnerHandler = h.Transport });
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/tickets")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("""{"ticket":"tk-1"}""")))
            {
                Headers = { ContentType = new MediaTypeHeaderValue("application/json") },
            },
        };

        // The strategy executed twice with the same request, as an outer retry does.
        using (await invoker.SendAsync(request, CancellationToken.None))
        {
        }

        using (await invoker.SendAsync(request, CancellationToken.None))
        {
        }

        extractor.Bodies.Should().Equal("""{"ticket":"tk-1"}""", """{"ticket":"tk-1"}""");
        extractor.Buffers.Should().HaveCount(2).And.OnlyContain(buffer => buffer != null && ReferenceEquals(buffer, extractor.Buffers[0]), "one buffer, read once");
        h.Transport.Hosts.Should().Equal(["a", "a"]);
    }

    private static HttpRequestMessage Post(string json, string? mediaType = "application/json")
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
        if (mediaType is not null)
        {
            content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }

        return new HttpRequestMessage(HttpMethod.Post, "http://x/v1/responses") { Content = content };
    }

    private sealed class AddressRecordingExtractor : AffinityIdExtractor
    {
        public List<string> Bodies { get; } = [];

        /// <summary>The array under each body handed over, when it is the request's one read of its body.</summary>
        public List<byte[]?> Buffers { get; } = [];

        public override AffinityRequest Extract(HttpRequestMessage request) => new() { ReadsBody = true };

        public override AffinityRequest ExtractFromBody(HttpRequestMessage request, ReadOnlySpan<byte> body, AffinityRequest fromRequest)
        {
            Bodies.Add(Encoding.UTF8.GetString(body));
            var shared = RequestBody.Of(request, keepBytes: true)!.Bytes;
            Buffers.Add(body == shared.Span && MemoryMarshal.TryGetArray(shared, out var segment) ? segment.Array : null);
            return fromRequest;
        }
    }
}
