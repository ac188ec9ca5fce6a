using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Polly.PriorityRouting.Tests.Support;

namespace Polly.PriorityRouting.Tests.Affinity;

/// <summary>A creating answer read by a pipelines consumer, which waits for data with zero-byte reads.</summary>
public class AffinityZeroByteReadTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_created_id_is_pinned_when_the_answer_is_read_with_zero_byte_reads(bool watched)
    {
        var pins = new InMemoryAffinityStore(100, TimeProvider.System);
        using var h = new RoutingHarness(
            o =>
            {
                o.Affinity.Store = pins;
                o.FirstByteTimeout = watched ? TimeSpan.FromSeconds(5) : null;
            },
            RoutingHarness.Backend("a", 1));
        var answer = new ScriptedBodyStream().Send("""{"id":"resp_a-1",""").Send(""" "object":"response","status":"completed"}""").End();
        h.Transport.Respond("a", _ => new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(answer) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        });

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/responses")
        {
            Content = new StringContent("""{"model":"gpt-4o","input":"hi"}""", Encoding.UTF8, "application/json"),
        };
        using var response = await h.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = PipeReader.Create(await response.Content.ReadAsStreamAsync(), new StreamPipeReaderOptions(useZeroByteReads: true));
        var body = new StringBuilder();
        while (true)
        {
            var result = await reader.ReadAsync();
            foreach (var segment in result.Buffer)
            {
                body.Append(Encoding.UTF8.GetString(segment.Span));
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await reader.CompleteAsync();
        body.ToString().Should().Be("""{"id":"resp_a-1", "object":"response","status":"completed"}""");
        pins.TryFind("resp_a-1", out var holder).Should().BeTrue();
        holder.Should().Be("a@http://a");
    }
}
