using System.Text.Encodings.Web;
using System.Text.Json;

namespace Polly.PriorityRouting;

/// <summary>
/// One backend's own name for a logical model, precomputed in the forms an attempt writes it: an escaped path segment
/// and a JSON string literal.
/// </summary>
internal sealed class ModelDeployment
{
    public ModelDeployment(string name)
    {
        Name = name;
        PathSegment = Uri.EscapeDataString(name);

        // A complete JSON string token, quotes included: escaped as JSON requires (quotes, backslashes, controls), other
        // characters kept as they are.
        var encoded = JsonEncodedText.Encode(name, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes;
        var literal = new byte[encoded.Length + 2];
        literal[0] = (byte)'"';
        encoded.CopyTo(literal.AsSpan(1));
        literal[^1] = (byte)'"';
        JsonLiteral = literal;
    }

    /// <summary>Gets the backend's deployment or model name.</summary>
    public string Name { get; }

    /// <summary>Gets <see cref="Name"/> escaped for one path segment.</summary>
    public string PathSegment { get; }

    /// <summary>Gets <see cref="Name"/> as a UTF-8 JSON string token, quotes included.</summary>
    public ReadOnlyMemory<byte> JsonLiteral { get; }

    /// <summary>Returns the name.</summary>
    public override string ToString() => Name;
}
