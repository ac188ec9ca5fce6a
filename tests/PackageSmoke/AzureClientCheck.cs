using System.ClientModel;
using System.ClientModel.Primitives;
using Azure.AI.OpenAI;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Chat;

namespace PackageSmoke;

/// <summary>
/// The README's Azure OpenAI wiring against the packaged library: AzureOpenAIClient on the handler's HttpClient, the
/// SDK's retries off; the first backend throttles, the second answers the completion.
/// </summary>
internal static class AzureClientCheck
{
    private const string Completion = """
        {"id":"chatcmpl-1","object":"chat.completion","created":1732406400,"model":"gpt-4o",
         "choices":[{"index":0,"message":{"role":"assistant","content":"hello from d"},"finish_reason":"stop"}],
         "usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}
        """;

    public static async Task RunAsync(Action<string, bool, string> check)
    {
        using var c = new LoopbackBackend("c") { Answer = (429, "Retry-After: 30\r\n") };
        using var d = new LoopbackBackend("d") { Json = Completion };
        var services = new ServiceCollection();
        services.AddHttpClient("azure").AddPriorityRoutingHandler(options =>
        {
            options.Routing.Backends.Add(new Polly.PriorityRouting.PriorityBackend { Name = "c", BaseAddress = c.Address, Priority = 1, Headers = { ["api-key"] = "key-c" } });
            options.Routing.Backends.Add(new Polly.PriorityRouting.PriorityBackend { Name = "d", BaseAddress = d.Address, Priority = 2, Headers = { ["api-key"] = "key-d" } });
        });
        services.AddSingleton(provider => new AzureOpenAIClient(
                new Uri("https://priority-routing.invalid/"),
                new ApiKeyCredential("unused"),
                new AzureOpenAIClientOptions
                {
                    Transport = new HttpClientPipelineTransport(provider.GetRequiredService<IHttpClientFactory>().CreateClient("azure")),
                    RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                    NetworkTimeout = Timeout.InfiniteTimeSpan,
                })
            .GetChatClient("gpt-4o"));
        using var provider = services.BuildServiceProvider();

        try
        {
            ChatCompletion completion = await provider.GetRequiredService<ChatClient>().CompleteChatAsync([new UserChatMessage("Say hello.")]);
            var text = completion.Content.Single().Text;
            check("azure client", text == "hello from d" && c.Hits == 1 && d.Hits == 1
                && d.RequestLines.Single().StartsWith("POST /openai/deployments/gpt-4o/chat/completions?api-version=", StringComparison.Ordinal),
                $"'{text}', c {c.Hits} hit(s), d {d.Hits} hit(s): {d.RequestLines.SingleOrDefault()}");
        }
        catch (Exception e)
        {
            // MissingMethodException is what a mismatched Azure.AI.OpenAI / OpenAI pair throws here.
            check("azure client", false, $"{e.GetType().Name}: {e.Message}");
        }
    }
}
