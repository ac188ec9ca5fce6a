using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// The answer to a request for a model that no backend serves: 404 with an OpenAI-style error body that names the model
/// and the models that are served — without calling any backend.
/// </summary>
internal static class ModelNotFoundResponse
{
    public const string Code = "model_not_found";

    /// <summary>The requested name comes from the caller: the answer and the logs show at most this many characters of it.</summary>
    public const int MaxShownLength = 256;

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static HttpResponseMessage Create(HttpRequestMessage request, string model, IReadOnlyList<string> served)
    {
        var message = $"The model '{Shown(model)}' is not served by any backend. Served models: {string.Join(", ", served.Select(name => $"'{name}'"))}.";
        using var body = new MemoryStream();
        using (var writer = new Utf8JsonWriter(body, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error");
            writer.WriteString("message", message);
            writer.WriteString("type", "invalid_request_error");
            writer.WriteString("param", "model");
            writer.WriteString("code", Code);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        var content = new ByteArrayContent(body.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        return new HttpResponseMessage(HttpStatusCode.NotFound) { RequestMessage = request, Content = content };
    }

    /// <summary>
    /// The name as shown: at most <see cref="MaxShownLength"/> characters (then "…"), invalid UTF-16 replaced, so a
    /// caller's name can neither make the answer large nor make it fail to serialise.
    /// </summary>
    internal static string Shown(string model)
    {
        var shown = new StringBuilder(Math.Min(model.Length, MaxShownLength + 1));
        foreach (var rune in model.EnumerateRunes())
        {
            if (shown.Length + rune.Utf16SequenceLength > MaxShownLength)
            {
                return shown.Append('…').ToString();
            }

            shown.Append(rune.ToString());
        }

        return shown.ToString();
    }
}
