using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Polly.PriorityRouting.Tests.Routing;

/// <summary>
/// The one pass over a body against <see cref="JsonDocument"/>, which reads JSON as the services do (escapes unescaped,
/// the last of duplicated properties): on generated bodies with repeated, escaped and nested properties.
/// </summary>
public class RequestBodyFactsOracleTests
{
    private static readonly string[] Ids = ["resp_a-1", "resp_b-2", "resp_c-3"];
    private static readonly string[] Keys = ["tenant-1", "tenant-2", "u-3"];

    [Fact]
    public void Reads_every_generated_body_as_a_json_parser_does()
    {
        var random = new Random(19);
        for (var i = 0; i < 2_000; i++)
        {
            var body = Generate(random);
            var bytes = Encoding.UTF8.GetBytes(body);
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;

            var facts = RequestBodyFacts.Scan(bytes, readModel: true);

            var because = "of the body " + body;
            facts.Referenced.Value.Should().Be(LastString(root, "previous_response_id") is { } id && AffinityId.IsValid(id) ? id : null, because);
            facts.StickyKey.Should().Be(LastString(root, "prompt_cache_key") ?? LastString(root, "user"), because);
            facts.Model.Should().Be(LastString(root, "model"), because);
            var promptBytes = Last(root, "input") is { } input ? TextBytes(input) : 0;
            var outputCap = Last(root, "max_tokens") is { ValueKind: JsonValueKind.Number } cap ? cap.GetInt64() : 0;
            facts.EstimatedTokens.Should().Be(((promptBytes + 3) / 4) + outputCap, because);
        }
    }

    /// <summary>The value of the last top-level property of that name when it is a non-empty string, as a parser reads it.</summary>
    private static string? LastString(JsonElement root, string name)
        => Last(root, name) is { ValueKind: JsonValueKind.String } property && property.GetString() is { Length: > 0 } value ? value : null;

    private static JsonElement? Last(JsonElement root, string name)
        => root.EnumerateObject().Where(p => p.Name == name).Select(p => (JsonElement?)p.Value).LastOrDefault();

    /// <summary>The UTF-8 bytes of every string value in an element, unescaped.</summary>
    private static long TextBytes(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => Encoding.UTF8.GetByteCount(element.GetString()!),
        JsonValueKind.Array => element.EnumerateArray().Sum(TextBytes),
        JsonValueKind.Object => element.EnumerateObject().Sum(p => TextBytes(p.Value)),
        _ => 0,
    };

    private static string Generate(Random random)
    {
        var properties = new List<string>();
        for (var n = random.Next(1, 9); n > 0; n--)
        {
            properties.Add(random.Next(9) switch
            {
                0 => Property(random, "previous_response_id", Quote(random, Pick(random, Ids))),
                1 => Property(random, "previous_response_id", random.Next(2) == 0 ? "null" : "42"),
                2 => Property(random, "metadata", "{" + Property(random, "previous_response_id", Quote(random, Pick(random, Ids))) + "}"),
                3 => Property(random, "input", "[{\"role\":\"user\",\"content\":\"hi\"," + Property(random, "previous_response_id", Quote(random, Pick(random, Ids))) + "}]"),
                4 => Property(random, "user", Quote(random, Pick(random, Keys))),
                5 => Property(random, "prompt_cache_key", Quote(random, Pick(random, Keys))),
                6 => Property(random, "model", random.Next(3) == 0 ? "null" : Quote(random, Pick(random, ["gpt-4o", "gpt-4o-mini"]))),
                7 => Property(random, "max_tokens", random.Next(1, 1000).ToString(CultureInfo.InvariantCulture)),
                _ => Property(random, "temperature", "0.5"),
            });
        }

        return "{" + string.Join(",", properties) + "}";
    }

    private static string Pick(Random random, string[] values) => values[random.Next(values.Length)];

    private static string Property(Random random, string name, string value) => Quote(random, name) + ":" + value;

    /// <summary>A JSON string whose characters are escaped (<c>\u005f</c>) at random, as some serializers do.</summary>
    private static string Quote(Random random, string text)
    {
        var quoted = new StringBuilder("\"");
        foreach (var c in text)
        {
            quoted.Append(random.Next(4) == 0 ? "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture) : c.ToString());
        }

        return quoted.Append('"').ToString();
    }
}
