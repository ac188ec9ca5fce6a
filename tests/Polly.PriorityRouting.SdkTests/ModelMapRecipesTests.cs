using System.ClientModel;
using Azure.AI.OpenAI;
using OpenAI;
using OpenAI.Chat;
using Polly.PriorityRouting.SdkTests.Support;

namespace Polly.PriorityRouting.SdkTests;

/// <summary>
/// The model-map recipes of docs/recipes.md ("One model, differently named deployments" and "A multi-model pool"), run
/// against fake services: the snippets there are these options, with the loopback addresses replaced by real-looking ones.
/// </summary>
public sealed class ModelMapRecipesTests : FakeBackendsTestBase
{
    private static readonly ChatMessage[] Messages = [new UserChatMessage("Say hello.")];

    [Fact]
    public async Task One_model_differently_named_deployments()
    {
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            {
                new PriorityBackend { Name = "ptu-eastus", BaseAddress = A.Address, Priority = 1, Models = { ["gpt-4o"] = "gpt-4o-ptu" } },
                new PriorityBackend { Name = "paygo-swedencentral", BaseAddress = B.Address, Priority = 2, Models = { ["gpt-4o"] = "gpt-4o" } },
                new PriorityBackend { Name = "paygo-westus3", BaseAddress = C.Address, Priority = 2, Models = { ["gpt-4o"] = "gpt-4o-2024-11-20" } },
            },
        };
        A.ThrottleFor(TimeSpan.FromSeconds(30));
        using var host = new SdkClientHost(options);
        var chat = new AzureOpenAIClient(
                new Uri("http://placeholder/"),
                new ApiKeyCredential("placeholder"),
                new AzureOpenAIClientOptions(AzureOpenAIClientOptions.ServiceVersion.V2024_10_21) { Transport = host.Transport })
            .GetChatClient("gpt-4o");

        ChatCompletion completion = await chat.CompleteChatAsync(Messages);

        A.Received.Single().Request.Path.Should().Be("/openai/deployments/gpt-4o-ptu/chat/completions");
        var served = B.Served.Concat(C.Served).Single();
        served.Path.Should().Be(completion.Content.Single().Text == "Hello from b."
            ? "/openai/deployments/gpt-4o/chat/completions"
            : "/openai/deployments/gpt-4o-2024-11-20/chat/completions");
    }

    [Fact]
    public async Task A_multi_model_pool()
    {
        var options = new PriorityRoutingStrategyOptions
        {
            Backends =
            {
                new PriorityBackend { Name = "ptu-eastus", BaseAddress = A.Address, Priority = 1, Models = { ["gpt-4o"] = "gpt-4o-ptu" } },
                new PriorityBackend { Name = "paygo-eastus2", BaseAddress = B.Address, Priority = 2, Models = { ["gpt-4o"] = "gpt-4o", ["o3"] = "o3" } },
                new PriorityBackend { Name = "paygo-swedencentral", BaseAddress = C.Address, Priority = 2, Models = { ["o3"] = "o3-2025-04-16" } },
            },
        };
        using var host = new SdkClientHost(DrawsInTurn.Apply(options));
        var openAI = new OpenAIClientOptions { Transport = host.Transport, Endpoint = new Uri("http://placeholder/openai/v1") };

        for (var i = 0; i < 6; i++)
        {
            await new ChatClient("o3", new ApiKeyCredential("placeholder"), openAI).CompleteChatAsync(Messages);
        }

        await new ChatClient("gpt-4o", new ApiKeyCredential("placeholder"), openAI).CompleteChatAsync(Messages);
        var unknown = async () => await new ChatClient("gpt-5", new ApiKeyCredential("placeholder"), openAI).CompleteChatAsync(Messages);

        (await unknown.Should().ThrowAsync<ClientResultException>()).Which.Status.Should().Be(404);
        A.Served.Should().ContainSingle().Which.Body.Should().Contain("\"model\":\"gpt-4o-ptu\"");
        (B.Hits, C.Hits).Should().Be((3, 3), "o3 is spread over the two backends that serve it (equal weights), never sent to the PTU");
        B.Served.Should().OnlyContain(r => r.Body.Contains("\"model\":\"o3\"", StringComparison.Ordinal));
        C.Served.Should().OnlyContain(r => r.Body.Contains("\"model\":\"o3-2025-04-16\"", StringComparison.Ordinal));
    }
}
