using System.Net.Http.Json;
using System.Text;

namespace Polly.PriorityRouting.Tests.Budgets;

public class OpenAIRequestCostTests
{
    [Fact]
    public void Chat_completions_cost_the_message_text_plus_max_tokens()
    {
        // "system" (6) + "Be brief." (9) + "user" (4) + 400 x "a" = 419 bytes -> 105 tokens, + 500.
        var body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\""
                   + new string('a', 400) + "\"}],\"max_tokens\":500,\"temperature\":0.2}";

        OpenAIRequestCost.Estimate(Encoding.UTF8.GetBytes(body)).Should().Be(105 + 500);
    }

    [Fact]
    public void Max_completion_tokens_and_n_multiply_the_output_cap()
    {
        var body = "{\"messages\":[{\"role\":\"user\",\"content\":\"abcd\"}],\"max_completion_tokens\":100,\"n\":3}";

        // "user" + "abcd" = 8 bytes -> 2 tokens.
        OpenAIRequestCost.Estimate(Encoding.UTF8.GetBytes(body)).Should().Be(2 + 300);
    }

    [Fact]
    public void Responses_count_input_and_instructions_and_max_output_tokens()
    {
        var body = "{\"model\":\"gpt-4.1\",\"instructions\":\"12345678\",\"input\":\"1234\",\"max_output_tokens\":64,\"store\":true}";

        OpenAIRequestCost.Estimate(Encoding.UTF8.GetBytes(body)).Should().Be(3 + 64);
    }

    [Fact]
    public void A_callers_absurd_output_cap_saturates_instead_of_wrapping_to_a_negative_cost()
    {
        // A negative cost would *add* to a budget when spent; the caller controls these numbers.
        var body = "{\"messages\":[{\"role\":\"user\",\"content\":\"abcd\"}],\"max_tokens\":9223372036854775807,\"n\":128}";

        OpenAIRequestCost.Estimate(Encoding.UTF8.GetBytes(body)).Should().Be(2 + (OpenAIRequestCost.MaxOutputCap * 128));
    }

    [Fact]
    public void Completions_count_the_prompt()
    {
        OpenAIRequestCost.Estimate("{\"prompt\":\"12345678\",\"max_tokens\":16}"u8).Should().Be(2 + 16);
    }

    [Fact]
    public void Embeddings_count_strings_and_token_ids_without_an_output_cap()
    {
        OpenAIRequestCost.Estimate("{\"input\":[\"12345678\",\"1234\"],\"model\":\"text-embedding-3-small\"}"u8).Should().Be(3);
        OpenAIRequestCost.Estimate("{\"input\":[[1,2,3],[4,5]]}"u8).Should().Be(5);
    }

    [Fact]
    public void Escaped_text_counts_as_the_text_it_stands_for()
    {
        // "\u0436\u0436" is "жж": 4 UTF-8 bytes (1 token), not the 12 bytes of its escaping.
        OpenAIRequestCost.Estimate("{\"prompt\":\"\\u0436\\u0436\"}"u8).Should().Be(1);
        OpenAIRequestCost.Estimate("{\"prompt\":\"a\\nb\\\"c\"}"u8).Should().Be(2, "a, newline, b, quote, c: 5 bytes");
    }

    [Fact]
    public void Of_a_repeated_property_the_last_counts_as_the_service_reads_it()
    {
        OpenAIRequestCost.Estimate("{\"prompt\":\"1234567812345678\",\"max_tokens\":100,\"prompt\":\"1234\",\"max_tokens\":10}"u8).Should().Be(1 + 10);
        OpenAIRequestCost.Estimate("{\"m\\u0061x_tokens\":10,\"prompt\":\"1234\"}"u8).Should().Be(1 + 10, "an escaped name is the same name");
    }

    [Fact]
    public void Anything_else_costs_zero()
    {
        OpenAIRequestCost.Estimate("not json"u8).Should().Be(0);
        OpenAIRequestCost.Estimate("[1,2]"u8).Should().Be(0);
        OpenAIRequestCost.Estimate("{\"messages\":[\"unterminated"u8).Should().Be(0);
        OpenAIRequestCost.Estimate(ReadOnlySpan<byte>.Empty).Should().Be(0);
    }

    [Fact]
    public async Task Reads_a_buffered_request_body_of_any_content_type_that_is_json()
    {
        using var json = new HttpRequestMessage(HttpMethod.Post, "http://x/")
        {
            Content = JsonContent.Create(new { prompt = "12345678", max_tokens = 10 }),
        };
        await json.Content.LoadIntoBufferAsync();
        using var text = new HttpRequestMessage(HttpMethod.Post, "http://x/") { Content = new StringContent("{\"prompt\":\"1234\"}", Encoding.UTF8, "text/plain") };
        using var none = new HttpRequestMessage(HttpMethod.Get, "http://x/");

        OpenAIRequestCost.Estimate(json).Should().Be(2 + 10);
        OpenAIRequestCost.Estimate(text).Should().Be(0);
        OpenAIRequestCost.Estimate(none).Should().Be(0);
    }
}
