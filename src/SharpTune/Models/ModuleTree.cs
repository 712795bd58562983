using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Module surgery by dotted path ("model.layers.0.self_attn.q_proj"), as PEFT and bitsandbytes do it in PyTorch with
/// setattr: a child is swapped both in the parent's registry (so names, <c>to()</c> and state dicts see it, in its
/// original position) and in the parent's C# field or list slot that its forward pass calls.
/// </summary>
public static class ModuleTree
{
    private static readonly FieldInfo SubmodulesField = typeof(nn.Module).GetField("_internal_submodules", BindingFlags.Instance | BindingFlags.NonPublic)
                                                        ?? throw new MissingFieldException("TorchSharp.nn.Module._internal_submodules");
    private static readonly FieldInfo SequentialNames = typeof(Sequential).GetField("_names", BindingFlags.Instance | BindingFlags.NonPublic)
                                                        ?? throw new MissingFieldException("TorchSharp.Modules.Sequential._names");
    private static readonly FieldInfo SequentialModules = typeof(Sequential).GetField("_modules", BindingFlags.Instance | BindingFlags.NonPublic)
                                                          ?? throw new MissingFieldException("TorchSharp.Modules.Sequential._modules");

    /// <summary>The module at <paramref name="path"/> ("" is the root).</summary>
    public static nn.Module Get(nn.Module root, string path)
    {
        var module = root;
        if (path.Length == 0)
            return module;
        foreach (var part in path.Split('.'))
            module = module.named_children().FirstOrDefault(c => c.name == part).module
                ?? throw new ArgumentException($"module '{path}' not found: '{part}' is not a child of {module.GetName()}");
        return module;
    }

    /// <summary>Every module once, under the first path that reaches it (a module registered under two names, or
    /// shared, is not listed twice).</summary>
    public static IEnumerable<(string Path, nn.Module Module)> UniqueModules(nn.Module root)
    {
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        foreach (var (name, module) in root.named_modules())
            if (seen.Add(module))
                yield return (name, module);
    }

    /// <summary>Puts <paramref name="replacement"/> where the module at <paramref name="path"/> was and returns the old module
    /// (not disposed: its tensors may live on inside the replacement).</summary>
    public static nn.Module Replace(nn.Module root, string path, nn.Module replacement)
    {
        var split = path.LastIndexOf('.');
        var parent = Get(root, split < 0 ? "" : path[..split]);
        var name = path[(split + 1)..];
        var old = parent.named_children().FirstOrDefault(c => c.name == name).module
                  ?? throw new ArgumentException($"module '{path}' not found");
        if (parent is Sequential sequential)
        {
            // Sequential keeps its children in private parallel lists of names and modules.
            var names = (List<string>)SequentialNames.GetValue(sequential)!;
            var modules = (System.Collections.IList)SequentialModules.GetValue(sequential)!;
            modules[names.IndexOf(name)] = replacement;
            return old;
        }
        SetSlot(parent, name, old, replacement, path);
        // Every registration of the old child is replaced (a module may be registered under its transformers name and
        // again under its field name); the ordered dictionary's indexer keeps the positions.
        var children = (OrderedDict<string, nn.Module>)SubmodulesField.GetValue(parent)!;
        foreach (var key in children.keys().Where(k => ReferenceEquals(children[k], old)).ToList())
            children[key] = replacement;
        return old;
    }

    private static void SetSlot(nn.Module parent, string name, nn.Module old, nn.Module replacement, string path)
    {
        var parentType = parent.GetType();
        if (parentType.IsGenericType && parentType.GetGenericTypeDefinition() == typeof(ModuleList<>) && int.TryParse(name, out var index))
        {
            var itemType = parentType.GetGenericArguments()[0];
            if (!itemType.IsInstanceOfType(replacement))
                throw new InvalidOperationException($"cannot put a {replacement.GetType().Name} at '{path}': the list holds {itemType.Name}");
            parentType.GetProperty("Item")!.SetValue(parent, replacement, [index]);
            return;
        }
        for (var type = parentType; type is not null && type != typeof(object); type = type.BaseType)
        {
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (!ReferenceEquals(field.GetValue(parent), old))
                    continue;
                if (!field.FieldType.IsInstanceOfType(replacement))
                    throw new InvalidOperationException(
                        $"cannot put a {replacement.GetType().Name} at '{path}': {type.Name}.{field.Name} is declared as {field.FieldType.Name} " +
                        "(declare replaceable layers as nn.Module<Tensor, Tensor>)");
                field.SetValue(parent, replacement);
            }
        }
    }
}
