using System.Text;
using Microsoft.Extensions.AI;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>Microsoft.Extensions.AI's <see cref="IChatClient"/> over the OpenAI SDK over priority routing.</summary>
public sealed class ChatClientAbstractionTests : FakeBackendsTestBase
{
    [Fact]
    public async Task GetResponseAsync_fails_over_invisibly()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null)));
        IChatClient chat = OpenAISdkTests.CreateChatClient(host).AsIChatClient();

        ChatResponse response = await chat.GetResponseAsync("Say hello.");

        response.Text.Should().Be("Hello from b.");
        response.ResponseId.Should().Be("chatcmpl-b-1");
        response.FinishReason.Should().Be(ChatFinishReason.Stop);
        response.Usage!.TotalTokenCount.Should().Be(12);
        (A.Hits, B.Hits).Should().Be((1, 1));
    }

    [Fact]
    public async Task GetStreamingResponseAsync_fails_over_invisibly()
    {
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        B.ThrottleFor(TimeSpan.FromSeconds(30));
        C.Reply = "Three tiers deep.";
        using var host = new SdkClientHost(SdkClientHost.Route((A, 1, null, null), (B, 2, null, null), (C, 3, null, null)));
        IChatClient chat = OpenAISdkTests.CreateChatClient(host).AsIChatClient();
        var text = new StringBuilder();
        var ids = new HashSet<string?>();

        await foreach (ChatResponseUpdate update in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Say hello.")]))
        {
            text.Append(update.Text);
            ids.Add(update.ResponseId);
        }

        text.ToString().Should().Be("Three tiers deep.");
        ids.Should().Equal("chatcmpl-c-1");
        (A.Hits, B.Hits, C.Hits).Should().Be((1, 1, 1));
    }
}
