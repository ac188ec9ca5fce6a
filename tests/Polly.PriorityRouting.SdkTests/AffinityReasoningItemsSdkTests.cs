using System.ClientModel;
using OpenAI.Responses;
using Polly.PriorityRouting.SdkTests.Support;

#pragma warning disable OPENAI001 // The Responses client is an evaluation API of the OpenAI SDK.

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// Encrypted reasoning items (<c>include: ["reasoning.encrypted_content"]</c>, <c>store: false</c>): the caller sends the
/// previous answer's items back in <c>input</c>, with no <c>previous_response_id</c>; only the backend that encrypted
/// them can read them. Through the OpenAI SDK's Responses client and the one-line handler, over three stateful backends.
/// </summary>
public sealed class AffinityReasoningItemsSdkTests : StatefulBackendsTest
{
    /// <summary>Echoed at the top of every answer, so that its reasoning item comes after the first 4 KB.</summary>
    private static readonly string LongInstructions = "Think step by step. " + new string('-', 5000);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Reasoning_items_sent_back_without_a_stored_response_reach_the_backend_that_encrypted_them(bool streamed)
    {
        using var host = new AffinityClientHost(Backends);
        var responses = host.OpenAI().GetResponsesClient();
        var conversation = new List<ResponseItem>();

        for (var turn = 0; turn < 10; turn++)
        {
            conversation.Add(ResponseItem.CreateUserMessageItem($"Turn {turn}."));
            var options = new CreateResponseOptions("o4-mini", conversation)
            {
                Instructions = LongInstructions,
                StoredOutputEnabled = false,
                StreamingEnabled = streamed,
                IncludedProperties = { IncludedResponseProperty.ReasoningEncryptedContent },
            };
            IReadOnlyList<ResponseItem> output = streamed ? await StreamAsync(responses, options) : [.. (await responses.CreateResponseAsync(options)).Value.OutputItems];
            output.OfType<ReasoningResponseItem>().Should().ContainSingle().Which.EncryptedContent.Should().NotBeNullOrEmpty();
            conversation.AddRange(output);
        }

        var reasoning = conversation.OfType<ReasoningResponseItem>().Select(r => r.Id).ToList();
        var origin = Backends.Single(b => b.Holds(reasoning[0]));
        reasoning.Should().OnlyContain(id => origin.Holds(id), "every turn was answered where the first reasoning item lives");
        origin.Received.Select(r => r.Status).Should().Equal(Enumerable.Repeat(200, 10));
        Backends.Where(b => b != origin).Sum(b => b.Hits).Should().Be(0);
        host.Pins.Count.Should().Be(10, "each answer pins its one reasoning item; an unstored response's id cannot be referenced, and is not pinned");
    }

    private static async Task<IReadOnlyList<ResponseItem>> StreamAsync(ResponsesClient responses, CreateResponseOptions options)
    {
        var items = new List<ResponseItem>();
        await foreach (var update in await responses.CreateResponseStreamingAsync(options))
        {
            if (update is StreamingResponseOutputItemDoneUpdate done)
            {
                items.Add(done.Item);
            }
        }

        return items;
    }
}
