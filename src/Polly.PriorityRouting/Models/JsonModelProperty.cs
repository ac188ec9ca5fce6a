using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// Finds the top-level <c>"model"</c> of a JSON request body in one forward scan, and where its value lies, so that the
/// value alone can be replaced and every other byte kept.
/// </summary>
internal static class JsonModelProperty
{
    // Deep enough for any request schema (tool parameters, response formats); bounded, so a hostile body cannot recurse
    // without end.
    private const int MaxDepth = 256;

    /// <summary>
    /// Returns the value of the top-level <c>"model"</c> property when it is a string, and the byte range of its token
    /// (quotes included). With several top-level <c>"model"</c> properties the last one counts, as JSON parsers of the
    /// services read it. Anything else — not an object, not valid JSON, a nested <c>"model"</c> only, a non-string
    /// value — finds nothing.
    /// </summary>
    public static bool TryFind(ReadOnlySpan<byte> json, [NotNullWhen(true)] out string? model, out int valueStart, out int valueEnd)
    {
        model = null;
        valueStart = 0;
        valueEnd = 0;
        var offset = json.StartsWith("\uFEFF"u8) ? 3 : 0;
        var reader = new Utf8JsonReader(json[offset..], new JsonReaderOptions { MaxDepth = MaxDepth });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isModel = reader.ValueTextEquals("model"u8);
                reader.Read();
                if (!isModel)
                {
                    // Nested objects and arrays are skipped whole: a "model" inside them is not the request's.
                    reader.Skip();
                }
                else if (reader.TokenType == JsonTokenType.String)
                {
                    model = reader.GetString()!;
                    valueStart = offset + (int)reader.TokenStartIndex;
                    valueEnd = offset + (int)reader.BytesConsumed;
                }
                else
                {
                    model = null;
                    reader.Skip();
                }
            }

            return model is not null && reader.TokenType == JsonTokenType.EndObject;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // Not JSON, or a string that is not valid UTF-16 once unescaped: the body names no model we can route on.
            model = null;
            return false;
        }
    }
}
