using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using OpenAI.Chat;
using OpenAI.Files;
using OpenAI.Responses;
using Polly.PriorityRouting.SdkTests.Support;

#pragma warning disable OPENAI001 // The Responses client is an evaluation API of the OpenAI SDK.

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// What a request body pins, as a user meets it through the one-line handler: three equal-weight backends that each keep
/// their own files and responses and answer 404 for the others'.
/// </summary>
public sealed class AffinityRequestBodySdkTests : StatefulBackendsTest
{
    [Fact]
    public async Task A_chat_completion_with_an_uploaded_file_as_a_content_part_reaches_the_files_backend_every_time()
    {
        using var host = new AffinityClientHost(Backends);
        var client = host.OpenAI();
        OpenAIFile file = await client.GetOpenAIFileClient().UploadFileAsync(BinaryData.FromString("%PDF-1.4 report"), "report.pdf", FileUploadPurpose.UserData);
        var origin = OriginOf(file.Id);
        var chat = client.GetChatClient("gpt-4o");

        for (var i = 0; i < 10; i++)
        {
            // No user, no prompt_cache_key: only the content part names the file.
            ChatCompletion completion = await chat.CompleteChatAsync(
                new UserChatMessage(ChatMessageContentPart.CreateTextPart("Summarise the report."), ChatMessageContentPart.CreateFilePart(file.Id)));
            OriginOf(completion.Id).Should().Be(origin);
        }

        Backend(origin).Hits.Should().Be(11, "the upload and ten completions");
        Backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_create_read_through_a_pipe_reader_with_zero_byte_reads_has_its_follow_ups_routed_to_its_backend()
    {
        using var host = new AffinityClientHost(Backends);
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://placeholder/v1/responses")
        {
            Content = new StringContent("""{"model":"gpt-4o","input":"Hello."}""", Encoding.UTF8, "application/json"),
        };

        // Read as it streams in (not buffered by HttpClient first), as a proxy or a pipelines consumer reads it.
        using var created = await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = PipeReader.Create(await created.Content.ReadAsStreamAsync(), new StreamPipeReaderOptions(useZeroByteReads: true));
        var body = new MemoryStream();
        while (true)
        {
            var result = await reader.ReadAsync();
            foreach (var segment in result.Buffer)
            {
                body.Write(segment.Span);
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        await reader.CompleteAsync();
        using var json = JsonDocument.Parse(body.ToArray());
        var id = json.RootElement.GetProperty("id").GetString()!;
        var origin = OriginOf(id);

        var responses = host.OpenAI().GetResponsesClient();
        for (var i = 0; i < 10; i++)
        {
            ResponseResult next = await responses.CreateResponseAsync("gpt-4o", $"Follow-up {i}.", id);
            OriginOf(next.Id).Should().Be(origin);
        }

        Backends.Sum(b => b.NotFound).Should().Be(0);
        Backends.Where(b => b.Name != origin).Sum(b => b.Hits).Should().Be(0);
    }

    [Fact]
    public async Task A_previous_response_id_written_with_escapes_is_followed_to_its_backend()
    {
        using var host = new AffinityClientHost(Backends);
        ResponseResult first = await host.OpenAI().GetResponsesClient().CreateResponseAsync("gpt-4o", "Hello.", previousResponseId: null);
        var origin = OriginOf(first.Id);
        var escapedId = first.Id.Replace("_", "\\u005f", StringComparison.Ordinal);

        for (var i = 0; i < 10; i++)
        {
            using var next = await host.Client.PostAsync(
                "http://placeholder/v1/responses",
                new StringContent($$"""{"model":"gpt-4o","input":"More.","previous\u005fresponse_id":"{{escapedId}}"}""", Encoding.UTF8, "application/json"));
            ((int)next.StatusCode).Should().Be(200);
        }

        Backends.Sum(b => b.NotFound).Should().Be(0);
        Backend(origin).Hits.Should().Be(11);
    }

    [Fact]
    public async Task New_responses_that_carry_a_previous_response_id_in_their_metadata_still_spread_over_every_backend()
    {
        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI().GetResponsesClient();
        ResponseResult first = await responses.CreateResponseAsync("gpt-4o", "Hello.", previousResponseId: null);

        for (var i = 0; i < 60; i++)
        {
            var options = new CreateResponseOptions("gpt-4o", [ResponseItem.CreateUserMessageItem("Hello.")])
            {
                Metadata = { ["previous_response_id"] = first.Id },
            };
            await responses.CreateResponseAsync(options);
        }

        // Weighted-random over three equal backends: each is missed by 60 draws with probability (2/3)^60 < 1e-10.
        Backends.Where(b => b.Name != OriginOf(first.Id)).Should().OnlyContain(b => b.Hits > 0);
        Backends.Sum(b => b.Hits).Should().Be(61);
    }

    private static string OriginOf(string id) => id.Split('_', '-')[1][..1];

    private FakeStatefulOpenAIBackend Backend(string name) => Backends.Single(b => b.Name == name);
}
