using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Polly.PriorityRouting;

/// <summary>
/// Walks a configuration section against the options type it is bound to, before binding, and reports every key the
/// binder would reject — with its full path (<c>Routing.Backends[0].Prioirty</c>) and what was expected — instead of
/// the binder's first exception, which loses the position of list items and names only the unknown key.
/// </summary>
/// <remarks>
/// Follows the binder's rules: keys match public properties case-insensitively; a property is set from a value when
/// its type converts from a string (<see cref="TypeDescriptor.GetConverter(Type)"/>, as the binder does); lists take
/// keys 0, 1, …; string-keyed dictionaries take any key; other classes take their own properties.
/// </remarks>
internal static class ConfigurationBindingChecker
{
    /// <summary>
    /// The largest edit distance at which an unknown key is offered the nearest known one; keys shorter than three
    /// times this get a third of their length, so that <c>Base</c> is not offered <c>Name</c>.
    /// </summary>
    private const int MaxSuggestionDistance = 2;

    private enum Shape
    {
        Value,
        List,
        Dictionary,
        Object,
        NotBindable,
    }

    /// <summary>Returns one message per key of <paramref name="section"/> that would not bind to <paramref name="type"/>.</summary>
    public static List<string> Check(IConfiguration section, Type type)
    {
        var errors = new List<string>();
        CheckObject(section, type, string.Empty, errors);
        return errors;
    }

    private static void CheckObject(IConfiguration section, Type type, string path, List<string> errors)
    {
        var properties = BindableProperties(type);
        foreach (var child in section.GetChildren())
        {
            var childPath = path.Length == 0 ? child.Key : $"{path}.{child.Key}";
            var property = properties.FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                var suggestion = Nearest(child.Key, properties.Select(p => p.Name));
                errors.Add(suggestion is null
                    ? $"{childPath} is not a known setting."
                    : $"{childPath} is not a known setting (did you mean {suggestion}?).");
                continue;
            }

            CheckValue(child, property.PropertyType, childPath, property.CanWrite && property.SetMethod!.IsPublic, errors);
        }
    }

    private static void CheckValue(IConfigurationSection section, Type type, string path, bool settable, List<string> errors)
    {
        var hasChildren = section.GetChildren().Any();
        var found = hasChildren ? (IsList(section) ? "an array" : "an object") : "a value";
        switch (ShapeOf(type, settable, out var itemType))
        {
            case Shape.NotBindable:
                errors.Add($"{path} cannot be set from configuration; set it in code.");
                break;

            case Shape.Value when hasChildren:
                errors.Add($"{path} must be {Expected(type)}, but was {found}.");
                break;

            case Shape.Value:
                CheckConversion(section.Value, type, path, errors);
                break;

            case Shape.List or Shape.Dictionary or Shape.Object when !hasChildren:
                // An empty array or object arrives as a value of null or "": nothing to bind, nothing wrong.
                if (!string.IsNullOrEmpty(section.Value))
                {
                    errors.Add($"{path} must be {(ShapeOf(type, settable, out _) == Shape.List ? "an array" : "an object")}, but was a value.");
                }

                break;

            case Shape.List when !IsList(section):
                errors.Add($"{path} must be an array, but was an object.");
                break;

            case Shape.List:
                foreach (var item in section.GetChildren())
                {
                    CheckValue(item, itemType!, $"{path}[{item.Key}]", settable: true, errors);
                }

                break;

            case Shape.Dictionary:
                foreach (var entry in section.GetChildren())
                {
                    CheckValue(entry, itemType!, $"{path}.{entry.Key}", settable: true, errors);
                }

                break;

            case Shape.Object when IsList(section):
                errors.Add($"{path} must be an object, but was an array.");
                break;

            default:
                CheckObject(section, type, path, errors);
                break;
        }
    }

    private static void CheckConversion(string? value, Type type, string path, List<string> errors)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (string.IsNullOrEmpty(value) || target == typeof(string) || target == typeof(object))
        {
            // Null and "" clear a value, as the binder does with them; strings take anything.
            return;
        }

        try
        {
            _ = TypeDescriptor.GetConverter(target).ConvertFromInvariantString(value);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or OverflowException
                                  || e.InnerException is FormatException or ArgumentException or OverflowException)
        {
            // An address's query may carry a key (?code=…, ?subscription-key=…): it never reaches a message.
            var shown = target == typeof(Uri) && value.Contains('?', StringComparison.Ordinal) ? value[..value.IndexOf('?', StringComparison.Ordinal)] + "?…" : value;
            errors.Add($"{path} must be {Expected(type)}, but was '{shown}'.");
        }
    }

    private static Shape ShapeOf(Type type, bool settable, out Type? itemType)
    {
        itemType = null;
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (typeof(Delegate).IsAssignableFrom(target))
        {
            return Shape.NotBindable;
        }

        if (target == typeof(string) || target == typeof(object) || TypeDescriptor.GetConverter(target).CanConvertFrom(typeof(string)))
        {
            return settable ? Shape.Value : Shape.NotBindable;
        }

        if (target.IsArray)
        {
            itemType = target.GetElementType();
            return Shape.List;
        }

        var dictionary = GenericInterface(target, typeof(IDictionary<,>)) ?? GenericInterface(target, typeof(IReadOnlyDictionary<,>));
        if (dictionary is not null)
        {
            itemType = dictionary.GetGenericArguments()[1];
            return dictionary.GetGenericArguments()[0] == typeof(string) ? Shape.Dictionary : Shape.NotBindable;
        }

        var enumerable = GenericInterface(target, typeof(IEnumerable<>));
        if (enumerable is not null)
        {
            itemType = enumerable.GetGenericArguments()[0];
            return Shape.List;
        }

        return target.IsInterface || target.IsAbstract ? Shape.NotBindable : Shape.Object;
    }

    private static Type? GenericInterface(Type type, Type definition)
        => type.IsGenericType && type.GetGenericTypeDefinition() == definition
            ? type
            : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == definition);

    /// <summary>Configuration keeps an array as children keyed 0, 1, …; an object's children have names.</summary>
    private static bool IsList(IConfigurationSection section)
        => section.GetChildren().All(c => int.TryParse(c.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _));

    private static string Expected(Type type)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target.IsEnum)
        {
            return "one of " + string.Join(", ", Enum.GetNames(target));
        }

        return Type.GetTypeCode(target) switch
        {
            TypeCode.Boolean => "true or false",
            TypeCode.Byte or TypeCode.SByte or TypeCode.Int16 or TypeCode.UInt16 or TypeCode.Int32 or TypeCode.UInt32
                or TypeCode.Int64 or TypeCode.UInt64 => "a whole number",
            TypeCode.Single or TypeCode.Double or TypeCode.Decimal => "a number",
            TypeCode.String => "a string",
            _ when target == typeof(TimeSpan) => "a time span such as 00:00:30",
            _ when target == typeof(Uri) => "a URI",
            _ => $"a value of type {target.Name}",
        };
    }

    private static PropertyInfo[] BindableProperties(Type type)
        => [.. type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && p.GetMethod is { IsPublic: true })];

    private static string? Nearest(string key, IEnumerable<string> candidates)
    {
        string? nearest = null;
        var best = Math.Min(MaxSuggestionDistance, Math.Max(1, key.Length / 3)) + 1;
        foreach (var candidate in candidates)
        {
            var distance = Distance(key.ToUpperInvariant(), candidate.ToUpperInvariant());
            if (distance < best)
            {
                (nearest, best) = (candidate, distance);
            }
        }

        return nearest;
    }

    /// <summary>
    /// The Levenshtein distance with adjacent transpositions (optimal string alignment): an insertion, a deletion, a
    /// substitution or a swap of two neighbours costs one, so the typo <c>Prioirty</c> is one edit from <c>Priority</c>.
    /// </summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(d[i - 1, j - 1] + cost, Math.Min(d[i - 1, j], d[i, j - 1]) + 1);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
